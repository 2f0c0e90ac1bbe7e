"""ganaug: GAN-based synthetic data augmentation for small medical image classification sets."""

__version__ = "0.1.0"


class InputError(Exception):
    """Bad input or configuration: the CLI prints the message on one line and exits with 2.

    Raise it where the input is read, with a message that names the file, key or value and says
    what to do about it.
    """


def first_line(err: BaseException, limit: int | None = 160) -> str:
    """The first line of an error's message (cut to `limit` characters), or the error's type name
    when the message is empty: what a one-line refusal quotes of an underlying error."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


class Interrupted(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) raised where the process is, like Ctrl-C's
    KeyboardInterrupt, so the same clean-up runs (locks released, temp files removed); the CLI
    exits with 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP raise Interrupted (SIGINT raises KeyboardInterrupt already).

    Only the main thread of the main interpreter can install handlers; elsewhere this is a no-op.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def raise_interrupted(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), raise_interrupted)


__all__ = ["InputError", "Interrupted", "__version__", "first_line", "install_signal_handlers"]
