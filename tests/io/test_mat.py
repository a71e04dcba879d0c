"""Benchmark .mat reader: Zhu's layout (v5 and v7.3), ground-truth loaders, approximate wavelengths."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio

from simhsi.data import data_path
from simhsi.errors import FormatError, InputFileError
from simhsi.io import detect_format, open_cube
from simhsi.io.mat import load_mat, read_mat_abundances, read_mat_cube, read_mat_ground_truth


def _write_v73(path, variables: dict[str, np.ndarray], cells: dict[str, list[str]] | None = None) -> None:
    """A MATLAB v7.3 file: HDF5 with a 512-byte MATLAB header, arrays stored transposed, cell
    arrays of strings (column cells) as object references into ``#refs#``."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for k, v in variables.items():
            ds = f.create_dataset(k, data=np.asarray(v).T)
            ds.attrs["MATLAB_class"] = np.bytes_({"f": "double", "u": "uint16"}[np.asarray(v).dtype.kind])
        refs = f.create_group("#refs#")
        for k, strings in (cells or {}).items():
            handles = []
            for i, text in enumerate(strings):
                ch = refs.create_dataset(f"{k}{i}", data=np.array([[ord(c)] for c in text], dtype=np.uint16))
                ch.attrs["MATLAB_class"] = np.bytes_("char")
                handles.append(ch.ref)
            cell = f.create_dataset(k, data=np.array([handles], dtype=h5py.ref_dtype))
            cell.attrs["MATLAB_class"] = np.bytes_("cell")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by simhsi tests HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM" + b"\x00" * (512 - 128))


def test_jasper_layout_v5_and_v73(tmp_path):
    src = data_path("jasper_ridge", "jasperRidge2_R198.mat")
    assert detect_format(src) == "mat"
    cube = open_cube(src)
    assert cube.dims == ("y", "x", "band") and cube.shape == (100, 100, 198)
    raw = sio.loadmat(src)
    Y = raw["Y"]
    # column-major pixel order: pixel (row r, col c) is column r + c * nRow of Y
    np.testing.assert_array_equal(cube.values[7, 3], Y[:, 7 + 3 * 100])
    np.testing.assert_allclose(cube.wavelength.values, 380 + (raw["SlectBands"].ravel() - 1) * 9.46)
    assert cube.attrs["wavelengths_approximate"] == 1 and cube.attrs["units"] == "count"
    # the same data in a v7.3 (HDF5) file
    v73 = tmp_path / "jasper73.mat"
    _write_v73(v73, {k: raw[k] for k in ("Y", "nRow", "nCol", "nBand", "SlectBands")})
    assert detect_format(v73) == "mat"
    assert load_mat(v73)["Y"].shape == (198, 10000)
    back = open_cube(v73, chunks=50)
    assert back.chunks[0] == (50, 50)
    np.testing.assert_array_equal(back.values, cube.values)
    np.testing.assert_array_equal(back.wavelength.values, cube.wavelength.values)


def test_v73_ground_truth_with_cell_names(tmp_path):
    src = sio.loadmat(data_path("jasper_ridge", "jasperRidge2_end4.mat"))
    v73 = tmp_path / "end4_73.mat"
    _write_v73(v73, {"M": src["M"], "A": src["A"]}, cells={"cood": ["1-tree", "2-water", "3-dirt", "4-road"]})
    gt = read_mat_ground_truth(v73)
    ref = read_mat_ground_truth(data_path("jasper_ridge", "jasperRidge2_end4.mat"))
    assert list(gt.endmember.values) == ["tree", "water", "dirt", "road"]
    np.testing.assert_array_equal(gt.abundances.values, ref.abundances.values)
    np.testing.assert_array_equal(gt.endmembers.values, ref.endmembers.values)


def test_samson_cube_and_ground_truth():
    cube = read_mat_cube(data_path("samson", "samson_1.mat"))
    assert cube.shape == (95, 95, 156)
    np.testing.assert_allclose(cube.wavelength.values[[0, -1]], [401, 889])
    gt = read_mat_ground_truth(data_path("samson", "misicnet_E.mat"), data_path("samson", "misicnet_A_true.mat"),
                               names=["soil", "tree", "water"], wavelength=cube.wavelength.values)
    assert gt.abundances.shape == (3, 95, 95) and gt.endmembers.shape == (3, 156)
    assert list(gt.endmember.values) == ["soil", "tree", "water"]
    end4 = read_mat_ground_truth(data_path("jasper_ridge", "jasperRidge2_end4.mat"))
    assert list(end4.endmember.values) == ["tree", "water", "dirt", "road"]  # from 'cood' = 1-tree, ...
    np.testing.assert_allclose(end4.abundances.sum("endmember"), 1.0, atol=1e-5)


def test_shape_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.random((3, 4, 5))
    f = tmp_path / "plain.mat"
    sio.savemat(f, {"Y": cube.reshape(12, 5, order="F").T})  # no nRow/nCol, not square
    with pytest.raises(FormatError, match="shape=\\(rows, cols\\)"):
        read_mat_cube(f)
    with pytest.warns(UserWarning, match="wavelengths set to NaN"):
        c = read_mat_cube(f, shape=(3, 4))
    np.testing.assert_allclose(c.values, cube, rtol=1e-6)
    np.testing.assert_allclose(read_mat_cube(f, shape=(3, 4), wavelength=[1, 2, 3, 4, 5]).wavelength, [1, 2, 3, 4, 5])
    a = rng.dirichlet(np.ones(2), size=(3, 4))  # (rows, cols, p)
    g = tmp_path / "a.mat"
    sio.savemat(g, {"A": a.reshape(12, 2, order="F").T})
    np.testing.assert_allclose(read_mat_abundances(g, shape=(3, 4))[0], a.transpose(2, 0, 1))
    empty = tmp_path / "other.mat"
    sio.savemat(empty, {"foo": np.array(["text"])})
    with pytest.raises(FormatError, match="no image variable"):
        read_mat_cube(empty)
    cut = tmp_path / "cut.mat"
    cut.write_bytes(data_path("samson", "samson_1.mat").read_bytes()[:5000])
    with pytest.raises(InputFileError, match="truncated or corrupt"):
        read_mat_cube(cut)


def test_wavelengths_stored_in_the_file_are_used(tmp_path):
    y = np.random.default_rng(0).random((7, 12)).astype(np.float32)  # (bands, pixels), 3 x 4 image
    wl = np.linspace(500.0, 800.0, 7)
    sio.savemat(tmp_path / "s.mat", {"Y": y, "nRow": 3, "nCol": 4, "wavelength": wl, "fwhm": np.full(7, 9.0)})
    cube = read_mat_cube(tmp_path / "s.mat")
    np.testing.assert_allclose(cube["wavelength"].values, wl)
    np.testing.assert_allclose(cube["fwhm"].values, 9.0)
    assert cube.attrs["wavelengths_approximate"] == 0
