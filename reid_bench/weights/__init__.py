"""Pretrained ImageNet weights: which sets exist (``registry``), where their files are
(``store``), strict loading with provenance (``load``), and the BVLC CaffeNet converter
(``caffe``)."""

from .load import Loaded, load_pretrained, load_strict, read_state_dict, recording, skip_pretrained
from .registry import Preprocess, WeightSet, get, input_preprocess, names
from .store import WeightsError, locate, parse_overrides, use_overrides

__all__ = ["Loaded", "Preprocess", "WeightSet", "WeightsError", "get", "input_preprocess",
           "load_pretrained", "load_strict", "locate", "names", "parse_overrides",
           "read_state_dict", "recording", "skip_pretrained", "use_overrides"]
