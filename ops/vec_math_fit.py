# Near-minimax polynomial fits behind the coefficients of ops/vec_math_avx512.h:
# Lawson's iteration of weighted least squares on Chebyshev nodes, float64
# against mpmath references; prints each fit's max error in units of 2^-24
# (relative, so about half an f32 ulp) and its coefficients, lowest first.
# Run: python3 ops/vec_math_fit.py (numpy, mpmath).
import numpy as np
import mpmath as mp

mp.mp.dps = 40


def fit(f, basis, lo, hi, deg, weight, n=3000, iters=60):
    # Lawson's algorithm: weighted least squares whose weights converge to the minimax solution.
    k = np.arange(n); x = 0.5*(lo+hi) + 0.5*(hi-lo)*np.cos(np.pi*(k+0.5)/n)
    y = np.array([float(f(mp.mpf(float(v)))) for v in x])
    A = np.stack([basis(x, j) for j in range(deg+1)], 1)
    w = np.ones(n)/n; wt = weight(x, y)
    for _ in range(iters):
        sw = np.sqrt(w)
        c = np.linalg.lstsq(A*sw[:,None]*wt[:,None], y*sw*wt, rcond=None)[0]
        e = np.abs(A@c - y)*wt
        w = w*e; w /= w.sum()
    return c, e.max()

L=float(mp.log(2))/2
out = {}
c,e=fit(lambda r: (mp.exp(r)-1)/r if r!=0 else mp.mpf(1), lambda x,j:x**j, -L, L, 5, lambda x,y: np.abs(x)/np.exp(x)); out['exp']=(c,e)
c,e=fit(lambda s: mp.erf(mp.sqrt(s))/mp.sqrt(s) if s>0 else 2/mp.sqrt(mp.pi), lambda x,j:x**j, 0, 0.25, 4, lambda x,y: 1/y); out['erf']=(c,e)
k=0.5; lo,hi=0.5,10.5; tl,th=1/(1+k*hi),1/(1+k*lo)
c,e=fit(lambda t: mp.erfc((1/t-1)/k)*mp.exp(((1/t-1)/k)**2), lambda x,j:x**j, tl, th, 9, lambda x,y:1/y, n=2000, iters=40); out['erfc']=(c,e)
def g(s):
    a=mp.sqrt(s); return (mp.tanh(a)-a)/(a**3) if s>0 else mp.mpf(-1)/3
c,e=fit(g, lambda x,j:x**j, 0, 0.55**2, 4, lambda x,y: x/(1+x*y)); out['tanh']=(c,e)
for k,(c,e) in out.items():
    print(k, 'max err (2^-24 units)', e/2**-24)
    print('  ', ', '.join('%.9e' % v for v in c))
c,e=fit(lambda f: (mp.power(2,f)-1)/f if f!=0 else mp.log(2), lambda x,j:x**j, -0.5, 0.5, 5, lambda x,y: np.abs(x)/np.exp2(x)); print('exp2', e/2**-24); print('  ', ', '.join('%.9e' % v for v in c))
c,e=fit(lambda s: mp.erf(mp.sqrt(s))/mp.sqrt(s) if s>0 else 2/mp.sqrt(mp.pi), lambda x,j:x**j, 0, 1.0, 6, lambda x,y: 1/y); print('erf1', e/2**-24); print('  ', ', '.join('%.9e' % v for v in c))
