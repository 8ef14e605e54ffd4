"""RadLens desktop viewer (PySide6). Imports ``engine`` for every image and model operation.

Research use only, not for diagnosis.
"""

APP_NAME = "RadLens"
ORG_NAME = "RadLens"
