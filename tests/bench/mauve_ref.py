# mauve_ref: the MAUVE pipeline of mauve-text 0.4.0 (specs/eval.md §6.2) written against the same
# libraries it calls (numpy, scikit-learn PCA, faiss.Kmeans), for benchmarks where mauve-text
# itself cannot be installed. Usage: python3 mauve_ref.py P.f32 Q.f32 DIM [SEED]
import sys

import faiss
import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import auc
from sklearn.preprocessing import normalize


def kl(a, b):
    if np.logical_and(a != 0, b == 0).any():
        return np.inf
    m = np.logical_and(a != 0, b != 0)
    return np.sum(a[m] * np.log(a[m] / b[m]))


def main():
    dim = int(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 25
    p = np.fromfile(sys.argv[1], dtype=np.float32).reshape(-1, dim)
    q = np.fromfile(sys.argv[2], dtype=np.float32).reshape(-1, dim)
    k = max(2, int(round(min(len(p), len(q)) / 10)))
    x = normalize(np.vstack([q, p]), norm="l2", axis=1)
    pca = PCA(n_components=None, whiten=False, random_state=seed + 1).fit(x)
    keep = np.argmax(np.cumsum(pca.explained_variance_ratio_) >= 0.9) + 1
    z = pca.transform(x)[:, :keep].astype(np.float32)
    km = faiss.Kmeans(z.shape[1], k, niter=500, verbose=False, nredo=5, update_index=True,
                      seed=seed + 2)
    km.train(z)
    _, labels = km.index.search(z, 1)
    labels = labels.reshape(-1)
    qh = np.histogram(labels[: len(q)], bins=k, range=[0, k], density=True)[0]
    ph = np.histogram(labels[len(q):], bins=k, range=[0, k], density=True)[0]
    curve = [[0, np.inf]]
    for w in np.linspace(1e-6, 1 - 1e-6, 25):
        r = w * ph + (1 - w) * qh
        curve.append([kl(qh, r), kl(ph, r)])
    curve.append([np.inf, 0])
    curve = np.exp(-5 * np.asarray(curve))
    # the reference's tie rule (upper envelope), see eval.md §6.2 step 8
    i1 = np.lexsort((-curve[:, 1], curve[:, 0]))
    i2 = np.lexsort((-curve[:, 0], curve[:, 1]))
    m = 0.5 * (auc(curve[i1, 0], curve[i1, 1]) + auc(curve[i2, 1], curve[i2, 0]))
    print(m, k, keep)


main()
