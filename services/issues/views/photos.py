"""``/photos/…``: uploads and reads of report and resolution photos (the platform's photo routes)."""

from minsheng.platform.photos import photos_router
from services.issues import photos
from services.issues.models import Photo

router = photos_router("issues", Photo, photos.limits, photos.may_upload)
