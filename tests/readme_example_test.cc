// The README's example is examples/readme_example.cc, verbatim: the install
// test builds and runs that file against the installed library, and this test
// keeps the README's copy from drifting away from it.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ReadmeExample, IsTheExampleProgram) {
  const std::string readme = ReadFile(std::string(CF_SOURCE_DIR) + "/README.md");
  const std::string example = ReadFile(std::string(CF_SOURCE_DIR) + "/examples/readme_example.cc");
  ASSERT_FALSE(readme.empty());
  ASSERT_FALSE(example.empty());
  const std::string marker = "<!-- examples/readme_example.cc -->\n```cpp\n";
  const size_t begin = readme.find(marker);
  ASSERT_NE(begin, std::string::npos) << "README.md has no block marked " << marker;
  const size_t code = begin + marker.size();
  const size_t end = readme.find("```\n", code);
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(readme.substr(code, end - code), example)
      << "README.md's example differs from examples/readme_example.cc: copy the file into the README";
}

}  // namespace
