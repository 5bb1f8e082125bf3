"""The data pipeline: dataset formats, bad-file handling, augmentation, loaders.

    from reslab.data import DataConfig, build_data
    data = build_data(DataConfig(path="cifar-10-batches-py"), batch_size=128, seed=0)
    for images, labels in data.train.batches(epoch=0):
        ...
"""

from .build import Data, build_data, build_eval_loader
from .config import DataConfig
from .formats import Source, open_source

__all__ = ["Data", "DataConfig", "Source", "build_data", "build_eval_loader", "open_source"]
