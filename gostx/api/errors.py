"""gost's API errors (go-gost/x api/error.go): HTTP status + `{"code": .., "msg": ..}`."""

from __future__ import annotations

import json

from aiohttp import web


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg

    def response(self) -> web.Response:
        return web.Response(status=self.status, text=json.dumps({"code": self.code, "msg": self.msg}),
                            content_type="application/json")


def invalid() -> ApiError:
    return ApiError(400, 40001, "object invalid")


def duplicated() -> ApiError:
    return ApiError(400, 40002, "object duplicated")


def create_failed() -> ApiError:
    return ApiError(409, 40003, "object creation failed")


def not_found() -> ApiError:
    return ApiError(400, 40004, "object not found")


def save_failed(msg: str, code: int = 40005) -> ApiError:
    return ApiError(500, code, msg)


def ok() -> web.Response:
    return web.Response(text=json.dumps({"msg": "OK"}), content_type="application/json")
