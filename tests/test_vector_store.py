"""The Milvus Lite vector store: idempotent upserts, exact and IVF search, completeness marker
(an interrupted indexing run is incomplete until rerun to the end)."""
import numpy as np
import pytest

from tfx_bert.vector_store import VectorStore


def _vectors(n, dim=16, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_upserts_are_idempotent_and_search_is_exact_with_flat(tmp_path):
    store = VectorStore(str(tmp_path / "store.db"), "docs", 16, index_type="FLAT")
    store.create()
    x = _vectors(500)
    ids = [f"doc-{i}" for i in range(500)]
    store.upsert(ids, x)
    store.upsert(ids[:100], x[:100])  # a rerun of part of the corpus: replaced, not duplicated
    assert store.count() == 500
    hits = store.search(x[:20], k=5)
    for i, row in enumerate(hits):
        exact = [ids[j] for j in np.argsort(-(x @ x[i]))[:5]]
        assert [doc for doc, _ in row] == exact
        assert row[0][1] == pytest.approx(1.0, abs=1e-5)
    store.close()


def test_ivf_index_recall_and_dimension_check(tmp_path):
    store = VectorStore(str(tmp_path / "ivf.db"), "docs", 16, index_type="IVF_FLAT")
    store.create(expected_count=2000)
    x = _vectors(2000, seed=1)
    ids = [str(i) for i in range(2000)]
    store.upsert(ids, x)
    found = [set(doc for doc, _ in row) for row in store.search(x[:50], k=10, nprobe=64)]
    exact = [set(ids[j] for j in np.argsort(-(x @ q))[:10]) for q in x[:50]]
    assert np.mean([len(f & e) / 10 for f, e in zip(found, exact)]) > 0.9
    with pytest.raises(ValueError, match="upsert takes 2 ids"):
        store.upsert(["a", "b"], np.zeros((2, 8)))
    store.close()
    with pytest.raises(ValueError, match="holds 16-d vectors, not 32-d"):
        VectorStore(str(tmp_path / "ivf.db"), "docs", 32).create()


def test_interrupted_indexing_is_incomplete_until_rerun(tmp_path):
    path = str(tmp_path / "store.db")
    x = _vectors(300, seed=2)
    ids = [f"d{i}" for i in range(300)]
    store = VectorStore(path, "docs", 16, index_type="FLAT")
    store.create()
    store.clear_complete()
    store.upsert(ids[:120], x[:120])  # ... and the run dies here
    assert store.completed() is None and store.count() == 120
    store.clear_complete()  # the rerun
    store.upsert(ids, x)
    store.mark_complete("fp-1", 300)
    assert store.count() == 300
    assert store.completed() == {"fingerprint": "fp-1", "count": 300, "index_type": "FLAT", "dim": 16}
    store.clear_complete()  # a new run starts: readers see it incomplete again
    assert store.completed() is None
    store.close()


def test_the_file_is_released_to_other_processes_when_the_last_store_closes(tmp_path):
    """Milvus Lite: one process at a time per file. While this process has the store open,
    another process gets a clear error (not a pymilvus traceback); once every store on the file
    here is closed, the other process opens it."""
    import subprocess
    import sys

    uri = str(tmp_path / "store.db")
    first = VectorStore(uri, "docs", 16, index_type="FLAT")
    first.create()
    first.upsert(["a", "b"], _vectors(2))
    second = VectorStore(uri, "docs")  # the same file, the same process: shared
    probe = [sys.executable, "-c", "import sys; from tfx_bert.vector_store import VectorStore; "
             "s = VectorStore(sys.argv[1], 'docs'); print('COUNT', s.count()); s.close()", uri]
    first.close()
    assert second.count() == 2  # still open: the local server stays up for it
    busy = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    assert busy.returncode != 0 and "Cannot open the vector store at" in busy.stderr
    assert "one process at a time" in busy.stderr
    second.close()
    second.close()  # idempotent
    free = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    assert "COUNT 2" in free.stdout, free.stderr[-2000:]
