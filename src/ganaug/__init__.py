"""ganaug: GAN-based synthetic data augmentation for small medical image classification sets."""

__version__ = "0.1.0"


class InputError(Exception):
    """Bad input or configuration: the CLI prints the message on one line and exits with 2.

    Raise it where the input is read, with a message that names the file, key or value and says
    what to do about it.
    """


__all__ = ["InputError", "__version__"]
