"""``konfig.client``: the Python SDK under the server's name, as it was imported before it became
its own distribution, ``konfig-client`` (``sdks/python/``, import name ``konfig_client``).

Every public name of ``konfig_client`` is the same object here, so ``from konfig.client import
Konfig`` and ``from konfig_client import Konfig`` give one class and one exception tree. A
service that needs only the SDK installs ``konfig-client`` and imports ``konfig_client``.
"""

from konfig_client import *  # noqa: F403
from konfig_client import __all__ as __all__
