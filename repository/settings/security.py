"""Response headers that limit what a page may do in the browser: Content-Security-Policy (django-csp),
Referrer-Policy (Django's SecurityMiddleware) and Permissions-Policy (repository/web/security_headers.py).

Every page's scripts and styles come from our static files, so the policy allows only this origin: an injected
`<script>`, inline event handler, `style` attribute or `<form>` posting elsewhere does nothing even if it got past
the escaping. The one template that needs inline code (the API docs' Swagger UI page, from drf-spectacular)
carries a per-request nonce. A response that set its own policy keeps it: the rendered notebook's is stricter
(repository/rendering/pages.py).
"""

from csp.constants import NONCE, NONE, SELF

from ._env import env

_ORCID = f"https://{env.str('ORCID_BASE_DOMAIN', default='orcid.org')}"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        # NONCE is added to the header only on pages whose template used request.csp_nonce.
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-src": [SELF],  # the rendered notebook on the review and landing pages
        "frame-ancestors": [NONE],  # as X-Frame-Options: DENY; the rendered notebook sets 'self' itself
        # ORCID sign-in posts here and is redirected to ORCID, which form-action also governs.
        "form-action": [SELF, _ORCID],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}

SECURE_REFERRER_POLICY = "same-origin"  # Django's default, stated: no referrer leaves for other sites
# Powerful features no page of ours uses, refused to the pages and to anything they embed.
PERMISSIONS_POLICY = env.str(
    "PERMISSIONS_POLICY",
    default="accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
            "magnetometer=(), microphone=(), midi=(), payment=(), publickey-credentials-get=(), "
            "screen-wake-lock=(), serial=(), usb=(), xr-spatial-tracking=()",
)
