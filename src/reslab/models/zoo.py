"""Imports every model family so that their builders register themselves."""

from . import (  # noqa: F401
    alexnet,
    cifar_resnet,
    efficientnet,
    fast_cifar,
    googlenet,
    inception,
    mini_alexnet,
    mobilenetv2,
    preact_resnet,
    resnet,
    vgg,
    vit,
)
