// Thin client for the boxoffice HTTP API (docs/API.md). Every non-2xx answer
// becomes an ApiError carrying the contract's {error, message, ...} body.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `The service answered ${status}.`);
    this.status = status;
    this.code = (body && body.error) || "unknown";
    this.body = body || {};
  }
}

// fetch() only rejects when no answer arrived at all; callers may retry those.
export class NetworkError extends Error {
  constructor() {
    super("Could not reach the service. Check your connection and try again.");
  }
}

export async function request(method, path, { body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new NetworkError();
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    // A proxy's HTML error page, say: keep data null and report the status.
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const enc = encodeURIComponent;

export const api = {
  cities: () => request("GET", "/v1/cities"),
  movies: (cityId) => request("GET", `/v1/cities/${enc(cityId)}/movies`),
  shows: (cityId, movieId) =>
    request("GET", `/v1/cities/${enc(cityId)}/movies/${enc(movieId)}/shows`),
  show: (showId) => request("GET", `/v1/shows/${enc(showId)}`),
  seatEventsUrl: (showId) => `/v1/shows/${enc(showId)}/seats/events`,
  // queuePass: the token of the release queue's pass, while the show's queue is active.
  hold: (showId, seats, customer, queuePass) =>
    request("POST", `/v1/shows/${enc(showId)}/holds`, { body: { seats, customer }, headers: passHeader(queuePass) }),
  // Best available: the service picks `count` seats side by side (docs/API.md).
  holdBest: (showId, count, category, customer, queuePass) =>
    request("POST", `/v1/shows/${enc(showId)}/holds`, {
      body: category ? { count, category, customer } : { count, customer },
      headers: passHeader(queuePass),
    }),
  getHold: (holdId) => request("GET", `/v1/holds/${enc(holdId)}`),
  release: (holdId) => request("DELETE", `/v1/holds/${enc(holdId)}`),
  confirm: (holdId, token, idempotencyKey) =>
    request("POST", `/v1/holds/${enc(holdId)}/confirm`, {
      body: { payment: { method: "card", token } },
      headers: { "Idempotency-Key": idempotencyKey },
    }),
  booking: (bookingId) => request("GET", `/v1/bookings/${enc(bookingId)}`),
  cancelBooking: (bookingId, idempotencyKey) =>
    request("POST", `/v1/bookings/${enc(bookingId)}/cancel`, {
      headers: { "Idempotency-Key": idempotencyKey },
    }),
  joinWaitlist: (showId, count, customer, queuePass) =>
    request("POST", `/v1/shows/${enc(showId)}/waitlist`, { body: { count, customer }, headers: passHeader(queuePass) }),
  waitlistEntry: (entryId) => request("GET", `/v1/waitlist/${enc(entryId)}`),
  leaveWaitlist: (entryId) => request("DELETE", `/v1/waitlist/${enc(entryId)}`),
  waitlistEventsUrl: (entryId) => `/v1/waitlist/${enc(entryId)}/events`,
  // The release queue in front of a show whose sales open later (docs/API.md).
  joinQueue: (showId, customer) => request("POST", `/v1/shows/${enc(showId)}/queue`, { body: { customer } }),
  queueTicket: (ticketId) => request("GET", `/v1/queue/${enc(ticketId)}`),
  leaveQueue: (ticketId) => request("DELETE", `/v1/queue/${enc(ticketId)}`),
  queueEventsUrl: (ticketId) => `/v1/queue/${enc(ticketId)}/events`,
};

function passHeader(queuePass) {
  return queuePass ? { "X-Queue-Pass": queuePass } : {};
}

// crypto.randomUUID exists only in secure contexts (https, localhost); plain
// http on a LAN address still has getRandomValues, so build a v4 UUID from it.
export function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Follows a record (a waitlist entry, a queue ticket) over its Server-Sent Events stream:
// each event is the whole record. The record is also read whenever the stream (re)connects,
// so a change made while it was down is not missed. Answers the EventSource, to close.
export function followRecord(eventsUrl, read, onRecord) {
  const source = new EventSource(eventsUrl);
  source.onmessage = (event) => onRecord(JSON.parse(event.data));
  source.onopen = async () => {
    try {
      onRecord(await read());
    } catch {
      // The stream will still tell us.
    }
  };
  return source;
}
