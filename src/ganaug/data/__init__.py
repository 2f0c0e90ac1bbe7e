"""Data layer: load a data spec, validate it, resize it, and read/write the npz contract.

Implements the paper's preprocessing (bicubic resize of the fundus images to 64x64x3). The npz
contract is MedMNIST's own layout (`{split}_images` uint8 (N, H, W, C), `{split}_labels`), plus
optional `class_names`, a JSON `meta` with provenance, and per-image sidecar arrays such as
`train_seeds` or `train_source_index`. Every stage reads and writes it through this package.

Deviation from the paper: offline, the 64 px images are made from MedMNIST's 28 px file by bicubic
upsampling (the paper resized the full-size fundus photographs).

- `imageset.py`: `ImageSet`, the train-only leakage guard, `summarize`
- `contract.py`: reading and writing the npz contract; `checks.py`: validating its arrays
- `specs.py`: `load_spec`, from `folders.py` (image folders) or `medmnist_cache.py` (MedMNIST flags)
- `resize.py`: bicubic resize and channel conversion
"""

# `__all__` is the former one-file data.py's; its other names, underscore helpers included, still
# import from here
from ganaug.data.checks import _check_classes_agree as _check_classes_agree
from ganaug.data.checks import _check_images as _check_images
from ganaug.data.checks import _check_labels as _check_labels
from ganaug.data.checks import _class_list as _class_list
from ganaug.data.checks import _class_names as _class_names
from ganaug.data.contract import imageset_from_arrays as imageset_from_arrays
from ganaug.data.contract import read_npz, write_npz
from ganaug.data.folders import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from ganaug.data.folders import _as_channels as _as_channels
from ganaug.data.folders import _class_folders as _class_folders
from ganaug.data.folders import _read_class_folders as _read_class_folders
from ganaug.data.folders import _read_image as _read_image
from ganaug.data.folders import _stratified_split as _stratified_split
from ganaug.data.folders import read_image_folder as read_image_folder
from ganaug.data.imageset import SPLITS as SPLITS
from ganaug.data.imageset import ImageSet, require_train_only, summarize
from ganaug.data.medmnist_cache import MEDMNIST_SIZES as MEDMNIST_SIZES
from ganaug.data.medmnist_cache import _medmnist_flag_of as _medmnist_flag_of
from ganaug.data.medmnist_cache import _medmnist_info as _medmnist_info
from ganaug.data.medmnist_cache import medmnist_class_names as medmnist_class_names
from ganaug.data.medmnist_cache import medmnist_file as medmnist_file
from ganaug.data.resize import convert_channels, resize_images
from ganaug.data.specs import file_sha256 as file_sha256
from ganaug.data.specs import load_spec

__all__ = [
    "ImageSet",
    "read_npz",
    "write_npz",
    "load_spec",
    "resize_images",
    "convert_channels",
    "require_train_only",
    "summarize",
]
