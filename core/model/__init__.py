"""The classifier (TensorFlow): backbones from keras.applications, the reference head, augmentation layers."""
