"""k-means (mini-batch, Lloyd, k-means++, spherical) and the triangle encoder."""

import numpy as np
import pytest

from ember.unsup.kmeans import KMeans, kmeans_plus_plus, squared_distances, triangle


def _blobs(rng, k=4, per=200, d=3, spread=0.05):
    centers = rng.standard_normal((k, d)) * 3
    x = np.concatenate([c + spread * rng.standard_normal((per, d)) for c in centers])
    labels = np.repeat(np.arange(k), per)
    return x, labels, centers


def _matched_error(found, centers):
    d = np.sqrt(((found[:, None] - centers[None]) ** 2).sum(-1))
    return d.min(axis=0).max(), sorted(d.argmin(axis=0).tolist())


@pytest.mark.parametrize("batch_size", [64, None])
def test_recovers_toy_clusters(batch_size):
    rng = np.random.default_rng(0)
    x, labels, centers = _blobs(rng)
    km = KMeans(4, batch_size=batch_size, iterations=10, seed=1).fit(x)
    worst, matched = _matched_error(km.centroids, centers)
    assert worst < 0.05 and matched == [0, 1, 2, 3]
    pred = km.predict(x)
    # the partition matches the true one up to a relabelling
    assert all(len(set(pred[labels == j])) == 1 for j in range(4))
    assert km.inertia(x) < 3 * 0.05**2 * 1.5


def test_kmeans_plus_plus_picks_distinct_clusters():
    rng = np.random.default_rng(3)
    x, labels, _ = _blobs(rng, k=5, spread=0.01)
    seeds = kmeans_plus_plus(x, 5, np.random.default_rng(0))
    # with well separated clusters, k-means++ almost surely seeds one centroid per cluster
    owner = [labels[np.argmin(((x - s) ** 2).sum(1))] for s in seeds]
    assert sorted(owner) == [0, 1, 2, 3, 4]


def test_spherical_centroids_are_unit_and_cluster_directions():
    rng = np.random.default_rng(1)
    directions = np.eye(3)
    x = np.concatenate([d * rng.uniform(0.5, 5, (100, 1)) + 0.02 * rng.standard_normal((100, 3)) for d in directions])
    km = KMeans(3, batch_size=50, iterations=5, spherical=True).fit(x)
    assert np.allclose(np.linalg.norm(km.centroids, axis=1), 1, atol=1e-5)
    assert np.abs(km.centroids @ directions.T).max(axis=0).min() > 0.99


def test_squared_distances_match_direct_formula():
    rng = np.random.default_rng(2)
    x, c = rng.standard_normal((7, 5)), rng.standard_normal((3, 5))
    direct = ((x[:, None] - c[None]) ** 2).sum(-1)
    assert np.allclose(squared_distances(x, c), direct)


def test_triangle_code_is_the_formula():
    rng = np.random.default_rng(4)
    x, c = rng.standard_normal((6, 4)), rng.standard_normal((5, 4))
    z = np.sqrt(((x[:, None] - c[None]) ** 2).sum(-1))
    expected = np.maximum(0, z.mean(axis=1, keepdims=True) - z)
    got = triangle(x, c)
    assert np.allclose(got, expected)
    assert (got >= 0).all() and (got == 0).any(axis=1).all()  # the farther half is switched off


def test_triangle_hand_computed():
    # x = 0, centroids at distances 1, 2, 6: mean 3 -> codes 2, 1, 0
    c = np.array([[1.0, 0], [0, 2.0], [-6.0, 0]])
    assert np.allclose(triangle(np.zeros((1, 2)), c), [[2, 1, 0]])


def test_encode_kinds_and_errors():
    rng = np.random.default_rng(5)
    x, _, _ = _blobs(rng, k=3, per=30)
    km = KMeans(3, iterations=3, batch_size=None).fit(x)
    hard = km.encode(x, "hard")
    assert (hard.sum(1) == 1).all() and (hard.argmax(1) == km.predict(x)).all()
    assert np.allclose(km.encode(x, "distance") ** 2, squared_distances(x, km.centroids), rtol=1e-4, atol=1e-4)
    assert km.encode(x, "dot").shape == (90, 3)
    with pytest.raises(ValueError, match="kind"):
        km.encode(x, "soft")
    with pytest.raises(ValueError, match="features"):
        km.encode(x[:, :2])
    with pytest.raises(RuntimeError, match="before fit"):
        KMeans(2).predict(x)
    with pytest.raises(ValueError, match="k="):
        KMeans(100).fit(x[:10])
    for bad in (dict(k=0), dict(k=2, batch_size=0), dict(k=2, init="nope"), dict(k=2, iterations=-1)):
        with pytest.raises(ValueError):
            KMeans(**bad)
    with pytest.raises(ValueError, match="N, D"):
        KMeans(2).fit(np.zeros(5))


def test_dead_centroids_are_reseeded():
    # all samples identical but two: no centroid may stay without samples forever
    x = np.zeros((50, 2))
    x[0], x[1] = 10, -10
    km = KMeans(3, batch_size=10, iterations=3, init="random", seed=0).fit(x)
    assert np.isfinite(km.centroids).all()


def test_same_seed_same_centroids():
    x, _, _ = _blobs(np.random.default_rng(6))
    a = KMeans(4, iterations=2, seed=7).fit(x).centroids
    b = KMeans(4, iterations=2, seed=7).fit(x).centroids
    assert np.array_equal(a, b)
