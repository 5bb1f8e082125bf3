"""Reports on trained runs: the HTML page, run comparisons, Grad-CAM, embedding maps."""

from .gradcam import grad_cam, grad_cam_batch, overlay_heatmap

__all__ = ["grad_cam", "grad_cam_batch", "overlay_heatmap"]
