"""``/photos/…``: uploads and reads of the photos grid workers take at the door (attached to a visit by id; the
platform's photo routes). Field staff only."""

from minsheng.platform.auth import Role
from minsheng.platform.images import ImageLimits
from minsheng.platform.photos import photos_router
from services.visits.models import Photo

router = photos_router("visits", Photo, lambda: ImageLimits(), lambda who: who.has(Role.staff, Role.grid_worker))
