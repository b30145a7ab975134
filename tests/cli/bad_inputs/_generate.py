"""Writes the binary files of the bad-input corpus (run once; the output is committed).

The text files (CSV, YAML, JSONL) are written by hand next to this script; only the
files that cannot be typed are generated here:  python tests/cli/bad_inputs/_generate.py
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def savez(case, name="data.npz", **arrays):
    (HERE / case).mkdir(exist_ok=True)
    np.savez(HERE / case / name, **arrays)


def values(rows, features=2, seed=0):
    return np.random.default_rng(seed).normal(size=(rows, features)).round(3).astype(np.float32)


def main():
    # The run every run-directory case copies: 8 sequences, 2 features.
    savez(
        "_trained_run",
        "tiny.npz",
        values=values(26),
        lengths=np.array([2, 3, 4, 5, 2, 3, 4, 3]),
        ids=np.array([f"s{i}" for i in range(8)]),
    )

    savez("npz_missing_lengths", values=values(5), ids=np.array(["a", "b"]))
    savez("npz_lengths_wrong_sum", values=values(5), lengths=np.array([2, 2]), ids=np.array(["a", "b"]))
    savez("npz_zero_length", values=values(5), lengths=np.array([2, 0, 3]), ids=np.array(["a", "b", "c"]))
    v = values(5)
    v[3, 0] = np.nan  # sequence 'b', step 1, feature 0
    savez("npz_nan", values=v, lengths=np.array([2, 3]), ids=np.array(["a", "b"]))
    savez("npz_duplicate_ids", values=values(6), lengths=np.array([2, 2, 2]), ids=np.array(["a", "b", "a"]))
    savez("npz_ids_wrong_count", values=values(5), lengths=np.array([2, 3]), ids=np.array(["a", "b", "c"]))
    (HERE / "npz_not_a_zip").mkdir(exist_ok=True)
    (HERE / "npz_not_a_zip" / "data.npz").write_bytes(np.random.default_rng(1).bytes(64).replace(b"PK", b"pk"))
    savez("npz_values_3d", values=np.zeros((4, 2, 1), np.float32), lengths=np.array([2, 2]))
    (HERE / "npz_single_npy").mkdir(exist_ok=True)
    with open(HERE / "npz_single_npy" / "data.npz", "wb") as f:
        np.save(f, values(4))
    savez("max_len_exceeded", values=values(7), lengths=np.array([2, 5]), ids=np.array(["a", "b"]))
    savez("next_step_length_one", values=values(10), lengths=np.array([3, 1, 3, 3]), ids=np.array(["a", "b", "c", "d"]))
    savez(
        "validation_feature_mismatch",
        "three_features.npz",
        values=values(6, features=3),
        lengths=np.array([3, 3]),
        ids=np.array(["a", "b"]),
    )
    savez(
        "evaluate_wrong_features",
        "three_features.npz",
        values=values(6, features=3),
        lengths=np.array([3, 3]),
        ids=np.array(["a", "b"]),
    )
    # Same shape as the trained run's data, other values: the normalization differs.
    savez(
        "resume_changed_data",
        "other.npz",
        values=values(26, seed=7) * 5 + 3,
        lengths=np.array([2, 3, 4, 5, 2, 3, 4, 3]),
        ids=np.array([f"s{i}" for i in range(8)]),
    )

    import pyarrow as pa
    import pyarrow.parquet as pq

    # One row per sequence; row 2's second step has 3 features, its first 2.
    (HERE / "parquet_ragged_steps").mkdir(exist_ok=True)
    pq.write_table(
        pa.table({"id": ["a", "b"], "values": [[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.0, 5.0]]]}),
        HERE / "parquet_ragged_steps" / "data.parquet",
    )
    # Long format (one row per step); row 3's 'x' is null.
    (HERE / "parquet_null_value").mkdir(exist_ok=True)
    pq.write_table(
        pa.table({"id": ["a", "a", "a", "b"], "x": [1.0, 2.0, None, 4.0], "y": [1.0, 2.0, 3.0, 4.0]}),
        HERE / "parquet_null_value" / "data.parquet",
    )
    (HERE / "parquet_not_parquet").mkdir(exist_ok=True)
    (HERE / "parquet_not_parquet" / "data.parquet").write_text("id,x\na,1\n")
    # One .npy file per sequence: b.npy has 3 features, a.npy 2.
    (HERE / "npy_dir_feature_mismatch" / "seqs").mkdir(parents=True, exist_ok=True)
    np.save(HERE / "npy_dir_feature_mismatch" / "seqs" / "a.npy", values(3))
    np.save(HERE / "npy_dir_feature_mismatch" / "seqs" / "b.npy", values(3, features=3))
    # Token text with a byte that is not UTF-8 on line 2.
    (HERE / "tokens_text_non_utf8").mkdir(exist_ok=True)
    (HERE / "tokens_text_non_utf8" / "data.txt").write_bytes(b"the cat sat\nthe d\xf6g ran\n")


if __name__ == "__main__":
    main()
