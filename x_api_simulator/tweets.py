"""The simulator's posts: generated per UTC minute, deterministically from (seed, minute, count).

About one post in eight (two templates of seventeen) does not mention Apple or the iPhone, so the DAG's default query
(``Apple OR iphone OR iPhone``) matches most posts but not all. With an edit rate, some posts are
edited once, 1 to 30 minutes after their creation; the edit is a new post (new id, created at the edit)
whose ``edit_history_tweet_ids`` runs from the original id to its own, and it replaces the original.
With a compliance rate, some posts that are never edited meet a compliance event (deleted, withheld,
their geo scrubbed, their author protected, suspended or deactivated) 1 to 60 minutes after creation.
"""

from __future__ import annotations

import functools
import random
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

TWITTER_EPOCH_MS = 1288834974657
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE_MS = 60_000
EDIT_WINDOW_MS = 30 * MINUTE_MS  # X allows edits for 30 minutes after posting
EDIT_WORKER = 1 << 12  # snowflake worker bit of edited versions, so their ids never collide with originals
EVENT_WINDOW_MS = 60 * MINUTE_MS  # a scheduled compliance event comes 1 to 60 minutes after the post
# Scheduled compliance events: kind and weight (deletions are the most common, as on X)
SCHEDULED_EVENTS = {"delete": 4, "scrub_geo": 2, "protect": 1, "suspend": 1, "deactivate": 1, "withhold": 1}
USER_POOL_SIZE = 500

_PRODUCTS = ("iPhone", "iphone", "Apple", "iPhone 17 Pro", "#iPhone", "@Apple", "APPLE", "Apple Watch")
_OPINIONS = (
    "worth every penny",
    "meh.",
    "battery life is 🔥",
    'it\'s "fine" I guess',
    "10/10 would buy again",
    "Überraschend gut!",
    "not sure 🤔; ask me tomorrow",
    "why is it $1,199?!",
    "c'est magnifique ✨",
    "最高👍",
)
_TEMPLATES = (  # every template but the last two names a product
    ("en", "Just got the new {product} 🍎 and honestly... {opinion}"),
    ("en", 'My mom: "is that the {product}?"\nMe: "no, it\'s a potato" 🥔'),
    ("en", "Backup folder C:\\Users\\me\\{product}\\backup is 40GB; why?? {opinion}"),
    ("en", "Pros: camera\r\nCons: price; battery\r\nVerdict: {opinion} #{product}"),
    ("en", "thread 🧵\n1/ the {product} keynote\n2/ {opinion}\n3/ fin"),
    ("en", "𝕏 users be like: {product} > everything 💯"),
    ("en", 'col1;col2;col3\n{product};{opinion};"quoted; value"'),
    ("en", "Tab\tseparated, 'single', back\\slash \\n not a newline — {product}"),
    ("en", "{product} unboxing, full review: https://t.co/x7Qp2 {opinion}"),
    ("en", "RT @someone: {opinion} 👨‍👩‍👧 {product}"),
    ("fr", "Franchement, l'{product} est trop cher… déçu 😕"),
    ("es", "¿Alguien más tiene problemas con el {product}? Año nuevo, señal mala 😤"),
    ("ja", "アップルの新しい{product}、カメラがすごい📸"),
    ("zh", "新的{product}太贵了；但是我还是买了 🍎"),
    ("de", "Größe, Gewicht, Qualität: das {product} überzeugt 👍"),
    ("en", "Weather's nice today ☀️; going for a walk 🚶"),
    ("und", "🍎🍎🍎 🇫🇷 👀 lol"),
)
_NAMING_A_PRODUCT = len(_TEMPLATES) - 2
_FIRST_NAMES = ("José", "Zoë", "Łukasz", "Анна", "山田", "Chloé", "Seán", "Nguyễn", "Bob", "Ada", "Søren")
_LAST_NAMES = ("Álvarez", "O'Connor", "Smith", '"The Dev"', "太郎", "Müller", "🍎", "\\o/", "𝕏 fan", "Dubois")
_HANDLES = ("applefan", "techguy", "jdoe", "iphone_lvr", "_x_", "Ana_B", "dev", "MrCupertino", "zoe")
_LOCATIONS = (
    "Paris, France",
    "Paris; France",
    "New York\nNY",
    "London\r\nUK",
    "東京都",
    "São Paulo 🇧🇷",
    "Cupertino, CA 🍎",
    "🌍",
    "Zürich",
    'the "cloud"',
    "C:\\home",
    "Earth; Mars soon",
)


class Event(NamedTuple):
    """A compliance event: its kind (``delete``, ``withhold``, ``scrub_geo``, ``edit``, ``protect``,
    ``suspend``, ``deactivate``) and when it happened."""

    kind: str
    at_ms: int


class Post(NamedTuple):
    """One version of a post: created at ``epoch_ms``, as in a response's ``data`` with every field,
    with the compliance event scheduled for it, if any."""

    epoch_ms: int
    tweet: dict
    author: dict
    event: Event | None = None


def format_ms(epoch_ms: int) -> str:
    """Format epoch milliseconds as a tweet's ``created_at`` (``YYYY-MM-DDTHH:MM:SS.mmmZ``)."""
    moment = EPOCH + timedelta(milliseconds=epoch_ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def snowflake_ms(tweet_id: int) -> int:
    """Epoch milliseconds encoded in a post id."""
    return (tweet_id >> 22) + TWITTER_EPOCH_MS


def _heavy_tail(rng: random.Random, scale: float) -> int:
    """Draw a non-negative count with a heavy tail, like social-media metrics."""
    return int((rng.paretovariate(1.3) - 1) * scale)


@functools.cache
def user_pool(seed: int) -> tuple[dict, ...]:
    """The deterministic pool of users (as in ``includes.users``, all fields) for a seed."""
    rng = random.Random(f"users:{seed}")
    users = []
    for index, user_id in enumerate(rng.sample(range(10**6, 10**18), USER_POOL_SIZE)):
        user = {
            "id": str(user_id),
            "name": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
            "username": f"{rng.choice(_HANDLES)}{index}",
        }
        if rng.random() < 0.7:
            user["location"] = rng.choice(_LOCATIONS)
        user["public_metrics"] = {
            "followers_count": _heavy_tail(rng, 200),
            "following_count": _heavy_tail(rng, 100),
            "tweet_count": _heavy_tail(rng, 2000),
            "listed_count": _heavy_tail(rng, 3),
            "like_count": _heavy_tail(rng, 1000),
        }
        users.append(user)
    return tuple(users)


def _tweet_text(rng: random.Random, names_a_product: bool) -> tuple[str | None, str]:
    """Draw (lang or None, text) for a post; some texts are cut at the 280-character limit."""
    templates = _TEMPLATES[:_NAMING_A_PRODUCT] if names_a_product else _TEMPLATES
    lang, template = rng.choice(templates)
    text = template.format(product=rng.choice(_PRODUCTS), opinion=rng.choice(_OPINIONS))
    if rng.random() < 0.1:
        text = " ".join([text, *rng.choices(_OPINIONS, k=40)])[:280]
    return (None if rng.random() < 0.05 else lang), text


@functools.lru_cache(maxsize=4096)  # more than the 1440 minutes of a 24 h window and their edits
def minute_posts(
    seed: int, minute: int, count: int, edit_rate: float, compliance_rate: float = 0.0
) -> tuple[tuple[Post, Post | None], ...]:
    """The posts created in one epoch minute as (original, its edit or None), oldest first.

    The first post is at second 0.000 of the minute, names a product, is never edited and meets no
    compliance event; the others spread uniformly at millisecond precision. An original that is never
    edited carries its scheduled compliance event, if any. The returned dicts are shared: never mutate
    them.
    """
    rng = random.Random(f"tweets:{seed}:{minute}")
    edits = random.Random(f"edits:{seed}:{minute}")  # apart, so the edit rate changes no original
    events = random.Random(f"compliance:{seed}:{minute}")  # apart too, for the compliance rate
    users = user_pool(seed)
    offsets = sorted([0] + [rng.randrange(MINUTE_MS) for _ in range(count - 1)]) if count > 0 else []
    posts = []
    previous_ms, seq = None, 0
    for index, offset in enumerate(offsets):
        epoch_ms = minute * MINUTE_MS + offset
        seq = seq + 1 if epoch_ms == previous_ms else 0
        previous_ms = epoch_ms
        tweet_id = str(((epoch_ms - TWITTER_EPOCH_MS) << 22) | seq)
        author = rng.choice(users[:20]) if rng.random() < 0.3 else rng.choice(users)
        lang, text = _tweet_text(rng, names_a_product=index == 0)
        tweet = {"id": tweet_id, "text": text, "author_id": author["id"], "created_at": format_ms(epoch_ms)}
        if lang:
            tweet["lang"] = lang
        likes = _heavy_tail(rng, 5)
        tweet["public_metrics"] = {
            "retweet_count": _heavy_tail(rng, 1),
            "reply_count": _heavy_tail(rng, 1),
            "like_count": likes,
            "quote_count": _heavy_tail(rng, 0.2),
            "bookmark_count": _heavy_tail(rng, 0.5),
            "impression_count": likes * 40 + rng.randrange(1000),
        }
        tweet["edit_history_tweet_ids"] = [tweet_id]
        original = Post(epoch_ms, tweet, author)
        edit_ms = epoch_ms + edits.randrange(MINUTE_MS, EDIT_WINDOW_MS)
        edit = (
            edited(original, edit_ms, EDIT_WORKER | index) if index and edits.random() < edit_rate else None
        )
        kind = events.choices(list(SCHEDULED_EVENTS), weights=list(SCHEDULED_EVENTS.values()))[0]
        event = Event(kind, epoch_ms + events.randrange(MINUTE_MS, EVENT_WINDOW_MS))
        if index and not edit and events.random() < compliance_rate:
            original = original._replace(event=event)
        posts.append((original, edit))
    return tuple(posts)


def edited(post: Post, edit_ms: int, low_bits: int) -> Post:
    """The version of a post after an edit at ``edit_ms``: a new id, from the edit's time and
    ``low_bits`` (snowflake worker and sequence), at the end of its edit history."""
    tweet_id = str(((edit_ms - TWITTER_EPOCH_MS) << 22) | low_bits)
    tweet = {
        **post.tweet,
        "id": tweet_id,
        "text": (post.tweet["text"] + " (edited)")[-280:],
        "created_at": format_ms(edit_ms),
        "edit_history_tweet_ids": [*post.tweet["edit_history_tweet_ids"], tweet_id],
    }
    return Post(edit_ms, tweet, post.author)


def posts_between(
    seed: int,
    rates: dict[int, int],
    default_rate: int,
    edit_rate: float,
    start_ms: int,
    end_ms: int,
    as_of_ms: int,
    compliance_rate: float = 0.0,
) -> list[Post]:
    """The latest version, as of ``as_of_ms``, of every post with ``start_ms <= created_at < end_ms``,
    newest first. An edit replaces its original once it exists: then only the edit is found, in the
    window of its own creation."""
    first_minute = (start_ms - (EDIT_WINDOW_MS if edit_rate else 0)) // MINUTE_MS
    found = []
    for minute in range(first_minute, (end_ms - 1) // MINUTE_MS + 1):
        count = rates.get(minute, default_rate)
        for original, edit in minute_posts(seed, minute, count, edit_rate, compliance_rate):
            latest = edit if edit and edit.epoch_ms <= as_of_ms else original
            if start_ms <= latest.epoch_ms < end_ms:
                found.append(latest)
    found.sort(key=lambda post: int(post.tweet["id"]), reverse=True)
    return found


def find_post(
    seed: int,
    rates: dict[int, int],
    default_rate: int,
    edit_rate: float,
    compliance_rate: float,
    tweet_id: str,
) -> tuple[Post, Post | None] | None:
    """(original, its edit or None) of the generated post one of whose versions has this id, or None."""
    if not tweet_id.isdigit():
        return None
    number = int(tweet_id)
    own_minute = snowflake_ms(number) // MINUTE_MS
    first = own_minute - EDIT_WINDOW_MS // MINUTE_MS if number & EDIT_WORKER else own_minute
    for minute in range(first, own_minute + 1):
        found = _minute_index(seed, minute, rates.get(minute, default_rate), edit_rate, compliance_rate)
        if tweet_id in found:
            return found[tweet_id]
    return None


@functools.lru_cache(maxsize=4096)
def _minute_index(
    seed: int, minute: int, count: int, edit_rate: float, compliance_rate: float
) -> dict[str, tuple[Post, Post | None]]:
    """minute_posts by the id of each version, so that a compliance job's ids are found at once."""
    index = {}
    for original, edit in minute_posts(seed, minute, count, edit_rate, compliance_rate):
        index[original.tweet["id"]] = (original, edit)
        if edit:
            index[edit.tweet["id"]] = (original, edit)
    return index
