"""The classifier (TensorFlow): backbones from keras.applications, the reference head, augmentation layers,
and the training mode in which frozen parts run in inference mode (frozen)."""
