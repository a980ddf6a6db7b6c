"""What a person can choose, as plain data: backbones, augmentations, the sidebar's choice lists.

No TensorFlow here: the dashboard draws its sidebar from these modules.
"""
