"""Writes the small .npz fixtures the data tests read (run with NumPy; the outputs are committed)."""
import numpy as np

x = (np.arange(12 * 6 * 5) % 256).astype(np.uint8).reshape(12, 6, 5)
y = np.array([0, 1, 2] * 4, dtype=np.int64)
xt = (255 - np.arange(3 * 6 * 5) % 256).astype(np.uint8).reshape(3, 6, 5)
yt = np.array([2, 1, 0], dtype=np.int64)
np.savez("small.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
np.savez_compressed("small-compressed.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
# Channel-last float RGB, no test set: a held-out share is used instead.
rgb = (np.arange(10 * 4 * 4 * 3) % 7 / 6.0).astype(np.float32).reshape(10, 4, 4, 3)
np.savez_compressed("rgb-float.npz", x_train=rgb, y_train=np.array([0, 1] * 5, dtype=np.int32))
np.savez("no-labels.npz", x_train=x)
# A folder of .npy files (dataset: npy), without a test set.
import os
os.makedirs("npy-folder", exist_ok=True)
np.save("npy-folder/x_train.npy", (np.arange(6 * 4 * 4) % 256).astype(np.uint8).reshape(6, 4, 4))
np.save("npy-folder/y_train.npy", np.array([0, 1, 0, 1, 0, 1], dtype=np.int64))
