"""The API's documentation pages: Swagger UI at /docs and ReDoc at /redoc.

FastAPI's own pages load whatever 5.x of swagger-ui-dist and 2.x of redoc jsDelivr
serves that day, and nothing checks what arrives: a bad release or a tampered CDN
would run its script on the page where users paste their API key. Here each file is
pinned to one release, with its SHA-384 as Subresource Integrity: the browser runs
or applies a file only if it hashes to that value. The hashes are those of the
files in the npm packages, which jsDelivr serves unchanged. To move to another
release, change a version below and its files' hashes, computed from the package:

    npm pack swagger-ui-dist@5.36.0 && tar -xzf swagger-ui-dist-5.36.0.tgz
    openssl dgst -sha384 -binary package/swagger-ui-bundle.js | openssl base64 -A

ReDoc's page leaves out Google Fonts, a stylesheet that differs by browser and so
cannot be pinned, and neither page fetches FastAPI's favicon from its website: the
pages load nothing from elsewhere but the files below.
"""

import functools
from typing import Final

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

SWAGGER_UI: Final = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.36.0"
REDOC: Final = "https://cdn.jsdelivr.net/npm/redoc@2.5.4"
INTEGRITY: Final = {
    f"{SWAGGER_UI}/swagger-ui-bundle.js": (
        "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+"
    ),
    f"{SWAGGER_UI}/swagger-ui.css": (
        "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc"
    ),
    f"{REDOC}/bundles/redoc.standalone.js": (
        "sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5"
    ),
}
"""Each file the pages load from the CDN, and the hash the browser checks it against."""

NO_ICON: Final = "data:,"
"""An empty icon, so the browser asks no server for one."""

router = APIRouter(include_in_schema=False)


def _openapi_url(request: Request) -> str:
    """The API document's URL as this request reaches it, behind a path prefix too."""
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


def _checked(page: HTMLResponse) -> bytes:
    """``page`` with the integrity of each file of ``INTEGRITY`` it loads."""
    html = bytes(page.body).decode()
    for url, digest in INTEGRITY.items():
        html = html.replace(f'"{url}"', f'"{url}" integrity="{digest}" crossorigin="anonymous"')
    return html.encode()


# A page depends only on the title and the document's URL, which are fixed while the
# service runs: each page is made once, not on every request. The URL has the path
# prefix of the server's settings (uvicorn's root_path), never one a request sends.
@functools.lru_cache(maxsize=4)
def swagger_ui_page(title: str, openapi_url: str) -> bytes:
    """Swagger UI's page of the API ``title``, reading its document at ``openapi_url``."""
    return _checked(
        get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=NO_ICON,
            # The API has no OAuth2 flow to return to.
            oauth2_redirect_url=None,
        )
    )


@functools.lru_cache(maxsize=4)
def redoc_page(title: str, openapi_url: str) -> bytes:
    """ReDoc's page of the API ``title``, reading its document at ``openapi_url``."""
    return _checked(
        get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{REDOC}/bundles/redoc.standalone.js",
            redoc_favicon_url=NO_ICON,
            with_google_fonts=False,
        )
    )


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return HTMLResponse(swagger_ui_page(request.app.title, _openapi_url(request)))


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return HTMLResponse(redoc_page(request.app.title, _openapi_url(request)))
