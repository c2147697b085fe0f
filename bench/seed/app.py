"""The product's original stack, rebuilt minimally for `make bench` to compare against.

The seed (see the product README) is one FastAPI + python-socketio + motor process run
by uvicorn. This file keeps that design and only the parts that `chat-load` exercises:

- `POST /users/auth/request_otp` {mobile} -> {"otp", "expires_in"}: the emulated OTP, stored
  in MongoDB and returned in the response (as the seed does, and as our local mode does).
- `POST /users/auth/verify` {mobile, otp} -> {"token", "refresh_token", "user_id",
  "display_name"}: finds or creates the user by mobile and stores a session token.
- Socket.IO (ASGI, path `/socket.io`): `auth: {token}` checked at connect; an in-process
  user -> sids map (the seed is a single server); `send_message` {to, text, client_id?}
  stores the message, emits `message` to the recipient's sockets, `delivered`
  {message_id} to the sender's when the recipient was connected, and acks the sender
  with the message. Messages stored while the recipient was away are sent at connect.
  (`client_id` is not in the seed's README: it is stored and echoed, without the
  idempotency our stack gives it, because chat-load tags each message with it.)
- `GET /health`: readiness probe for the scripts.

Left out, as `make bench` runs our stack with the experiments off: the latency illusion,
phantom typing, artistic chronology, identity drift; also typing, read receipts and the
history/profile routes, which `chat-load` never calls. Nothing here is tuned for speed.

Environment: PORT (8000), MONGO_URI (mongodb://localhost:27017), MONGO_DB (chat_seed),
LOG_LEVEL (warning).
"""

import os
import secrets
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone

import socketio
import uvicorn
from bson import ObjectId
from bson.errors import InvalidId
from fastapi import FastAPI, HTTPException
from motor.motor_asyncio import AsyncIOMotorClient
from pydantic import BaseModel
from pymongo import ASCENDING, ReturnDocument
from socketio.exceptions import ConnectionRefusedError as Refused

MONGO_URI = os.environ.get("MONGO_URI", "mongodb://localhost:27017")
MONGO_DB = os.environ.get("MONGO_DB", "chat_seed")
OTP_TTL = timedelta(minutes=5)

client = AsyncIOMotorClient(MONGO_URI, tz_aware=True)
db = client[MONGO_DB]


def now():
    # Milliseconds, as MongoDB stores them, so a message reads the same live and stored.
    t = datetime.now(timezone.utc)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def iso(t):
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fail(status, code, message):
    raise HTTPException(status_code=status, detail={"code": code, "message": message})


# ---------------------------------------------------------------- REST


@asynccontextmanager
async def lifespan(_app):
    # What the seed's migrations would have created for these queries.
    await db.users.create_index([("mobile", ASCENDING)], unique=True)
    await db.otps.create_index([("mobile", ASCENDING)])
    await db.sessions.create_index([("token", ASCENDING)], unique=True)
    await db.messages.create_index([("to", ASCENDING), ("delivered", ASCENDING)])
    yield
    client.close()


api = FastAPI(title="chat seed", lifespan=lifespan)


class OtpRequest(BaseModel):
    mobile: str


class VerifyRequest(BaseModel):
    mobile: str
    otp: str


def check_mobile(mobile):
    digits = mobile[1:] if mobile.startswith("+") else ""
    if not (digits.isdigit() and 8 <= len(digits) <= 15):
        fail(400, "invalid_mobile", "mobile must be in E.164 form, e.g. +15551234567")
    return mobile


@api.get("/health")
async def health():
    return {"ok": True}


@api.post("/users/auth/request_otp")
async def request_otp(body: OtpRequest):
    mobile = check_mobile(body.mobile)
    otp = f"{secrets.randbelow(1_000_000):06d}"
    await db.otps.insert_one(
        {"mobile": mobile, "otp": otp, "expires_at": now() + OTP_TTL}
    )
    # Emulated delivery: the code comes back in the response.
    return {"otp": otp, "expires_in": int(OTP_TTL.total_seconds())}


@api.post("/users/auth/verify")
async def verify(body: VerifyRequest):
    mobile = check_mobile(body.mobile)
    used = await db.otps.find_one_and_delete(
        {"mobile": mobile, "otp": body.otp, "expires_at": {"$gt": now()}}
    )
    if used is None:
        fail(401, "invalid_otp", "the code is wrong or expired")
    user = await db.users.find_one_and_update(
        {"mobile": mobile},
        {
            "$setOnInsert": {
                "mobile": mobile,
                "display_name": f"User {mobile[-4:]}",
                "created_at": now(),
            }
        },
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    token = secrets.token_urlsafe(32)
    # The seed's README answers token, user_id and display_name; refresh_token is here
    # only because chat-load's login requires the field. Nothing exchanges it.
    refresh_token = secrets.token_urlsafe(32)
    await db.sessions.insert_one(
        {
            "token": token,
            "refresh_token": refresh_token,
            "user_id": user["_id"],
            "created_at": now(),
        }
    )
    return {
        "token": token,
        "refresh_token": refresh_token,
        "user_id": str(user["_id"]),
        "display_name": user["display_name"],
    }


# ---------------------------------------------------------------- Socket.IO

sio = socketio.AsyncServer(async_mode="asgi")
# user_id -> the sids of that user's connections on this (the only) server.
user_sids: dict[str, set[str]] = {}


def message_payload(m):
    return {
        "message_id": str(m["_id"]),
        "from": m["from"],
        "to": m["to"],
        "text": m["text"],
        "created_at": iso(m["created_at"]),
        "client_id": m.get("client_id"),
    }


async def emit_to_user(user_id, event, data):
    for sid in list(user_sids.get(user_id, ())):
        await sio.emit(event, data, to=sid)


@sio.event
async def connect(sid, environ, auth):
    token = auth.get("token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token:
        raise Refused("unauthorized")
    if token.startswith("Bearer "):
        token = token[len("Bearer ") :]
    session = await db.sessions.find_one({"token": token})
    if session is None:
        raise Refused("unauthorized")
    user_id = str(session["user_id"])
    await sio.save_session(sid, {"user_id": user_id})
    user_sids.setdefault(user_id, set()).add(sid)
    # After the CONNECT answer has gone out: what arrived while the user was away.
    sio.start_background_task(send_pending, user_id)


async def send_pending(user_id):
    pending = await db.messages.find({"to": user_id, "delivered": False}).sort(
        "created_at", ASCENDING
    ).to_list(None)
    if not pending:
        return
    for m in pending:
        await emit_to_user(user_id, "message", message_payload(m))
    await db.messages.update_many(
        {"_id": {"$in": [m["_id"] for m in pending]}}, {"$set": {"delivered": True}}
    )
    for m in pending:
        await emit_to_user(m["from"], "delivered", {"message_id": str(m["_id"])})


@sio.event
async def disconnect(sid, *_reason):
    session = await sio.get_session(sid)
    user_id = session.get("user_id")
    sids = user_sids.get(user_id)
    if sids is not None:
        sids.discard(sid)
        if not sids:
            del user_sids[user_id]


def error(code, message):
    return {"error": {"code": code, "message": message}}


@sio.event
async def send_message(sid, data):
    session = await sio.get_session(sid)
    me = session["user_id"]
    if not isinstance(data, dict):
        return error("bad_request", "send_message takes {to, text}")
    to, text, client_id = data.get("to"), data.get("text"), data.get("client_id")
    if not isinstance(text, str) or not text.strip():
        return error("bad_request", "text must be a non-empty string")
    try:
        ObjectId(to)
    except (InvalidId, TypeError):
        return error("unknown_user", "to is not a user id")
    if to == me:
        return error("self_message", "cannot message yourself")
    online = bool(user_sids.get(to))
    m = {
        "from": me,
        "to": to,
        "text": text,
        "client_id": client_id if isinstance(client_id, str) else None,
        "created_at": now(),
        "delivered": online,
    }
    m["_id"] = (await db.messages.insert_one(m)).inserted_id
    payload = message_payload(m)
    await emit_to_user(to, "message", payload)
    if online:
        await emit_to_user(me, "delivered", {"message_id": payload["message_id"]})
    return payload


# Socket.IO on /socket.io, everything else to FastAPI: one ASGI app, as in the seed.
app = socketio.ASGIApp(sio, other_asgi_app=api, socketio_path="socket.io")


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ.get("PORT", "8000")),
        workers=1,
        # What `uvicorn app:app` picks with requirements.txt installed (no uvloop or
        # httptools), spelled out so that installing more does not change the numbers.
        loop="asyncio",
        http="h11",
        ws="websockets-sansio",
        log_level=os.environ.get("LOG_LEVEL", "warning"),
        access_log=False,
    )
