"""Classical (non-CNN) image features: HOG, colour histograms, SIFT/ORB bags of visual words,
keypoint matching with RANSAC, pairwise image comparison and face detection.

OpenCV and scikit-image are imported inside these modules, so `import reslab` stays light.
"""
