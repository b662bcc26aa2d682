"""The customer's consent page: answer a request, manage every consent, see every use. (Being built.)"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound


def consent_page(request: HttpRequest, token: str) -> HttpResponse:
    return HttpResponseNotFound()
