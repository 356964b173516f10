"""The reconnect-storm test's server: anywire's bench app (room ``bench`` joined in the
connect hook, ``POST /ctl/pace`` publishing numbered events) on anywire's default
settings, so the storm meets the limits an operator runs with."""

from anywire.bench.app import make_app
from anywire.core.settings import Settings

app = make_app(settings=Settings())
