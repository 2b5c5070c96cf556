-- Shared context of every show script. Every script of a show takes one key, the show's
-- meta hash, which names its cluster slot (every key of a show carries the show's hash
-- tag, so a script touches one slot), and names the show's other keys from its base
-- (ARGV[1]): a key passed costs Redis a Lua string on every call, a name made here is kept
-- while calls are for the same show. The show's keys, by the suffix after its base:
--   meta       hash: loaded, starts_at (ms), status (open|closed), seat_count, fence,
--              waitseq, wc:<category>, layout_stamp and index_epoch (best.lua), and
--              first_deadline (the deadlines zset's earliest score, "0": none; see
--              FIRST_DEADLINE below), listened_until and listened_since (ms, Redis
--              clock: the lease on the show's change messages, listen-1.lua; see
--              LISTENED_UNTIL below)  [KEYS[1]]
--   layout     hash: seat -> "category|row|place|rank|kind" (place: along the row, side
--              by side seats consecutive, an aisle skips a place; rank: lower is a better
--              seat, distinct per seat; kind: standard, wheelchair or companion; shows
--              loaded before kinds were kept have no "|kind": standard)
--   seats      hash: booked seat -> "b:<booking_id>". Whether a seat is free, held or
--              booked is the status map's (statusmap.lua); a held seat's hold names
--              it in its own hash, never here
--   deadlines  zset: hold_id -> deadline (ms, Redis clock)
--   customers  hash: customer -> seats held in this show
--   waitlist   zset: entry_id -> arrival number
--   waiters    hash: customer -> waiting entry_id
--   stats      hash: seats (the hall's), held, booked, waiting, holds_paid, holds_unpaid;
--              no count of the free seats (seat_counts below)
-- and the same first three arguments:
--   ARGV[1] key base of the show ("bo:show:{42}:"), for hold and entry hashes
--   ARGV[2] now in ms, or "" to use Redis's clock (tests move time with it)
--   ARGV[3] hold time in ms
-- Every show script answers -1 when the show is not loaded (the engine loads it
-- and calls again), else {result, next_wake, reindex, expired_late_ms, grant_waits_ms},
-- the two lists only when one has entries (see settle.lua, finish); the Output of each
-- header describes `result`.
-- Every script that changes state is idempotent by the id it acts on (a hold, an
-- entry, a confirm attempt): run twice, it answers the first run's outcome and
-- changes nothing, so a call whose answer was lost may be sent again.
-- Redis 7.0 turns each Lua number given to redis.call into text with printf("%.17g"),
-- which shows in profiles of the hot scripts: constant numbers are written as text
-- ('1'), and a number sent twice is made text once (string.format('%d', n)).
-- The scripts are the functions of one library (engine/scripts.py: FUNCTION LOAD once,
-- FCALL per call), so the helpers below are made once per load, not on every call. What
-- one call knows lives in the locals that follow, and every function starts with
-- start_call(KEYS, ARGV) (the loader puts it there), which sets each of them: nothing
-- carries over from one call to the next but the key names made from the show's base,
-- which stay while calls are for the same show (they depend on nothing else).

-- The globals the scripts use, as locals of the library under their own names. Inside a
-- function Redis looks a global up through the sandbox around the library on every use
-- (an empty table whose metatable leads to the real ones): 10,000 reads of a global took
-- a function 963 us, of a local 185 us, and a hold used globals some sixty times. The
-- library cannot read them while it loads (only `redis`, the loader's, with
-- register_function), so the first call of each loaded library sets them (start_call);
-- `redis` is the loader's until then, which registers the functions.
local function globals_of_a_call()
  return redis, string, table, math, tonumber, tostring, ipairs, pairs, unpack
end
local redis = redis
local string, table, math, tonumber, tostring, ipairs, pairs, unpack
local GLOBALS_SET = false

local K_META, K_LAYOUT, K_SEATS, K_DEADLINES
local K_CUSTOMERS, K_WAITLIST, K_WAITERS, K_STATS
local BASE
-- Set of the key suffixes ("hold:<id>", "entry:<id>") of the show's hold and waitlist entry
-- hashes (every entry's from when it is made, a hold's from when it ends: a live hold is
-- in the deadlines zset): unload_show-1.lua finds the ended ones through it (they leave
-- the deadlines and waitlist zsets when they end; no SCAN in a cluster script).
local K_RECORDS
-- The status map's string and seat index (statusmap.lua); the change messages' channel.
local K_STATUS_MAP, K_SEAT_INDEX, K_CHANGES
local NOW, TTL_MS
-- Ended holds and waitlist entries stay readable this long (status lookups).
local RETENTION_S = 86400

-- Seats changed by this call, each once in the order first changed, published once at
-- the end for live seat maps, and the state each was last given (its first character:
-- "h" held, "b" booked; false: freed), so publishing reads none. Every change of a seat
-- goes through set_seat or set_seats (statusmap.lua), which note it (seat_changed). Both
-- stay NONE (below) while the call changed no seat, and while no one streams the show:
-- then nothing is published.
local CHANGED, CHANGED_TO
local QUEUE_CHANGED
-- The three lists below stay nil until something is added (appended): most calls add
-- nothing, and making a Lua table costs Redis more than testing for nil. They are read
-- through `or NONE`, an empty list nothing adds to.
local NONE = {}
-- Entries this call ended, named in the change message: their streams read at once.
local ENDED_ENTRIES
-- For the service's metrics (engine/metrics.py): how late each hold this call
-- expired was past its deadline, and how long each waiter it granted had waited (ms).
local EXPIRED_LATE_MS, GRANT_WAITS_MS

-- Read by start_call, in one read of the meta hash before the script runs (every show
-- script first asks whether the show is loaded, and most ask several of these: a local
-- is read for free where a helper asking for them cost a call each time), kept in locals:
-- the show's `loaded` flag, start (ms, 0 when unknown), status (CLOSED), whether
-- explicit holds may strand a seat (NO_STRANDED) and when sales open (SALE_OPENS_AT, ms,
-- 0: on sale now; gate.lua) (only load_show-1.lua and close_show-1.lua set them); the
-- earliest hold deadline (nil: none), which every write to the deadlines zset updates
-- (create_hold) or forgets (FIRST_DEADLINE_KNOWN); and the waitlist's length (WAITING):
-- the entries that arrived less those that ended (the meta's waitseq and endseq: every
-- entry joins the waitlist zset with one and leaves it with the other, waitlist.lua),
-- kept as entries join and end.
-- The earliest deadline is read with the meta hash too (its first_deadline field), which
-- finish() writes whenever a call changed it: reading it from the zset (ZRANGE WITHSCORES)
-- made Redis format the score with "%.17g", about 4 % of a hold. The field is missing on a
-- show an older library loaded (then the zset is read), and the sweep reads the zset
-- every time, so a field that went wrong heals at the show's next sweep.
-- Until when a process serves a live stream of the show (its listened_until field, 0: no
-- one yet; listen-1.lua): change messages are published only until then (settle.lua,
-- publish_changes). A PUBLISH no one hears still cost a message built and a call.
local LOADED, STARTS_AT, CLOSED, NO_STRANDED, SALE_OPENS_AT, LISTENED_UNTIL
-- Whether the show started (STARTS_AT, when known, is not later than NOW).
local STARTED
local FIRST_DEADLINE, FIRST_DEADLINE_KNOWN
-- The first_deadline field as read or last written (0: none; nil: no field).
local STORED_FIRST_DEADLINE
local WAITING
-- next_wake() when the call began (settle.lua).
local START_WAKE
-- The status map's text this call read last and its first position (a number;
-- statusmap.lua, span_text), until the call writes to the map.
local LAST_TEXT, LAST_LOW

local function start_call(keys, argv)
  if not GLOBALS_SET then
    redis, string, table, math, tonumber, tostring, ipairs, pairs, unpack = globals_of_a_call()
    GLOBALS_SET = true
  end
  K_META = keys[1]
  if argv[1] ~= BASE then  -- another show than the last call's: its names (else kept: the same)
    BASE = argv[1]
    K_LAYOUT, K_SEATS, K_DEADLINES = BASE .. 'layout', BASE .. 'seats', BASE .. 'deadlines'
    K_CUSTOMERS, K_WAITLIST, K_WAITERS, K_STATS = BASE .. 'customers', BASE .. 'waitlist', BASE .. 'waiters',
      BASE .. 'stats'
    K_RECORDS, K_CHANGES = BASE .. 'records', BASE .. 'changes'
    K_STATUS_MAP, K_SEAT_INDEX = BASE .. 'statusmap', BASE .. 'seatindex'
  end
  if argv[2] ~= '' then
    NOW = tonumber(argv[2])
  else
    local t = redis.call('TIME')
    NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  TTL_MS = tonumber(argv[3])
  CHANGED, CHANGED_TO, QUEUE_CHANGED = NONE, NONE, false
  ENDED_ENTRIES, EXPIRED_LATE_MS, GRANT_WAITS_MS = nil, nil, nil
  FIRST_DEADLINE, FIRST_DEADLINE_KNOWN = nil, false
  STORED_FIRST_DEADLINE = nil
  START_WAKE = 0
  LAST_TEXT = nil
  local meta = redis.call('HMGET', K_META, 'loaded', 'starts_at', 'status', 'no_stranded_seats', 'sale_opens_at',
    'first_deadline', 'listened_until', 'waitseq', 'endseq')
  LOADED, STARTS_AT, CLOSED = meta[1] == '1', tonumber(meta[2] or '0'), meta[3] == 'closed'
  STARTED = STARTS_AT > 0 and STARTS_AT <= NOW
  NO_STRANDED, SALE_OPENS_AT = meta[4] == '1', tonumber(meta[5] or '0')
  LISTENED_UNTIL = tonumber(meta[7] or '0')
  WAITING = tonumber(meta[8] or '0') - tonumber(meta[9] or '0')
  if meta[6] then
    STORED_FIRST_DEADLINE = tonumber(meta[6])
    FIRST_DEADLINE, FIRST_DEADLINE_KNOWN = STORED_FIRST_DEADLINE > 0 and STORED_FIRST_DEADLINE or nil, true
  end
end

-- `list` (nil: none yet) with `value` added at its end.
local function appended(list, value)
  if list == nil then return {value} end
  list[#list + 1] = value
  return list
end

local function split_seats(csv)
  local out = {}
  for seat in string.gmatch(csv, '[^,]+') do out[#out + 1] = seat end
  return out
end

-- The category in a seat's entry of the layout hash.
local function category_of(info)
  return string.match(info, '^([^|]*)')
end

local function seat_category(seat)
  local info = redis.call('HGET', K_LAYOUT, seat)
  if not info then return nil end
  return category_of(info)
end

-- The show's free and held seats. Free is what is neither held nor booked: no count of
-- its own, which every hold and every release would write (a call each). A show an older
-- library loaded has its seats in the meta hash only (seat_count; its stats' `free`
-- went stale with the first change this library made).
local function seat_counts()
  local stats = redis.call('HMGET', K_STATS, 'seats', 'held', 'booked')
  local seats = tonumber(stats[1] or redis.call('HGET', K_META, 'seat_count') or '0')
  local held = tonumber(stats[2] or '0')
  return seats - held - tonumber(stats[3] or '0'), held
end

-- Whether this call notes the seats it changes for the change message: not while no one
-- streams the show (LISTENED_UNTIL): no message is published then (settle.lua,
-- publish_changes).
local function noting_changes()
  if CHANGED ~= NONE then return true end
  if LISTENED_UNTIL < NOW then return false end
  CHANGED, CHANGED_TO = {}, {}
  return true
end

-- Notes a seat's new state (as CHANGED_TO's) once noting_changes() said so.
local function seat_changed(seat, value)
  if CHANGED_TO[seat] == nil then CHANGED[#CHANGED + 1] = seat end
  CHANGED_TO[seat] = value
end

-- Why the show sells nothing now ('closed' or 'started'), or nil while it sells: nothing is
-- held, granted or confirmed once it started or was closed (CLOSED and STARTED, decided
-- on Redis's clock and Redis's copy of the show by start_call).
local function not_selling()
  if CLOSED then return 'closed' end
  if STARTED then return 'started' end
  return nil
end

local function first_deadline()
  if not FIRST_DEADLINE_KNOWN then
    local first = redis.call('ZRANGE', K_DEADLINES, '0', '0', 'WITHSCORES')
    FIRST_DEADLINE, FIRST_DEADLINE_KNOWN = first[2] and tonumber(first[2]), true
  end
  return FIRST_DEADLINE
end

-- Writes the earliest deadline (`first`, 0: none) into the meta hash when this call changed
-- it (finish()). A show not loaded has no meta hash to write (a status lookup of an
-- unloaded show's hold must not make one).
local function store_first_deadline(first)
  if LOADED and first ~= STORED_FIRST_DEADLINE then
    redis.call('HSET', K_META, 'first_deadline', string.format('%d', first))
    STORED_FIRST_DEADLINE = first
  end
end
