# CTest script: installs the build in CF_BUILD_DIR into a folder of it,
# builds examples/ against that installation with find_package(convfusion)
# (warnings are errors) and runs every example, which must exit 0.
#   cmake -DCF_BUILD_DIR=... -DCF_SOURCE_DIR=... -P install_examples.cmake
set(prefix ${CF_BUILD_DIR}/_install)
set(build ${CF_BUILD_DIR}/_examples)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${prefix})
run("cmake --install" ${CMAKE_COMMAND} --install ${CF_BUILD_DIR} --prefix ${prefix})
set(launcher)
find_program(CCACHE ccache)
if(CCACHE)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${CCACHE})
endif()
run("configuring examples/" ${CMAKE_COMMAND} -S ${CF_SOURCE_DIR}/examples -B ${build} -G Ninja
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_COMPILE_WARNING_AS_ERROR=ON ${launcher})
run("building examples/" ${CMAKE_COMMAND} --build ${build})
file(GLOB sources ${CF_SOURCE_DIR}/examples/*.cc)
foreach(src ${sources})
  get_filename_component(name ${src} NAME_WE)
  run("running examples/${name}" ${build}/${name})
  message(STATUS "${name}:\n${last_output}")
endforeach()
