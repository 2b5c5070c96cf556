-- The release queue of a show (docs/API.md, "Release queue"): tickets in order, paced
-- admission, passes. Needs context.lua. Its keys carry the show's hash tag (BASE):
--   queue       zset: waiting ticket -> order (its arrival number; with shuffle_before_open
--               the tickets of the opening's draw get 1..k and later joins ORDER_AFTER_DRAW +
--               arrival, so they come after them in order of joining)
--   queuers     hash: customer -> live ticket (waiting, or admitted with its pass unused)
--   passes      zset: ticket admitted, pass unused -> pass expiry (ms, Redis clock)
--   passtokens  hash: pass token -> ticket (the token is random, made by the engine)
--   qwaits      list: join-to-admission times (ms) not yet read by the metrics
--   ticket:<id> hash: customer, status, token, arrival, joined_at; admitted_at,
--               expires_at, admit_seq (the admission order, for audits), used; ended_at
-- Meta fields: sale_opens_at (ms, 0: on sale now, no queue), queue_order, qseq (arrivals),
-- qadmitted (admissions), qdrawn ("1": the opening's draw was made), qend ("sold_out" or
-- "closed": the queue ended), qexpired (passes lapsed, not yet read by the metrics), the
-- pacing settings qshoppers, qgroup, qrate, qpass_ms (written by every join) and the
-- admission budget qbudget, qbudget_at.
-- Statuses: waiting, admitted, expired, sold_out, left, closed. Every change of a ticket
-- is told on the show's change channel (its id among the ended entries: its stream reads).

local ORDER_AFTER_DRAW = 1099511627776  -- 2^40: above every drawn place

local function q_key(name) return BASE .. name end
local function ticket_key(ticket_id) return BASE .. 'ticket:' .. ticket_id end

-- sale_opens_at (ms, 0: none), order, end ('' while running), drawn.
local function queue_meta()
  local m = redis.call('HMGET', K_META, 'sale_opens_at', 'queue_order', 'qend', 'qdrawn')
  return tonumber(m[1] or '0'), m[2] or 'arrival', m[3] or '', m[4] == '1'
end

-- Is the queue in front of the sale now (holds and waitlist joins need a pass)?
local function queue_active()
  local opens, _, ended = queue_meta()
  return opens > 0 and ended == '' and not CLOSED
end

local function tell_ticket(ticket_id)
  ENDED_ENTRIES = appended(ENDED_ENTRIES, ticket_id)
  QUEUE_CHANGED = true
end

-- Ends a live ticket (waiting, or admitted with the pass unused) as `status`.
local function end_ticket(ticket_id, status)
  local key = ticket_key(ticket_id)
  local t = redis.call('HMGET', key, 'customer', 'token')
  redis.call('ZREM', q_key('queue'), ticket_id)
  redis.call('ZREM', q_key('passes'), ticket_id)
  if t[2] then redis.call('HDEL', q_key('passtokens'), t[2]) end
  if t[1] and redis.call('HGET', q_key('queuers'), t[1]) == ticket_id then
    redis.call('HDEL', q_key('queuers'), t[1])
  end
  redis.call('HSET', key, 'status', status, 'ended_at', NOW)
  redis.call('EXPIRE', key, RETENTION_S)
  tell_ticket(ticket_id)
end

-- Ends every live ticket (waiting and admitted-unused) and the queue itself.
local function end_queue(status)
  local ended = 0
  for _, name in ipairs({'queue', 'passes'}) do
    for _, ticket_id in ipairs(redis.call('ZRANGE', q_key(name), '0', '-1')) do
      end_ticket(ticket_id, status)
      ended = ended + 1
    end
  end
  redis.call('HSET', K_META, 'qend', status)
  return ended
end

-- The opening's draw of shuffle_before_open: every ticket that joined before the opening
-- (all waiting tickets then) gets its place from sha1(seed .. ticket), the seed being
-- drawn by the engine from the OS's CSPRNG: one uniformly random order, made once.
local function draw_order(seed)
  local tickets = redis.call('ZRANGE', q_key('queue'), '0', '-1')
  local keyed = {}
  for _, ticket_id in ipairs(tickets) do
    keyed[#keyed + 1] = {redis.sha1hex(seed .. ticket_id), ticket_id}
  end
  table.sort(keyed, function(a, b) return a[1] < b[1] end)
  for place, pair in ipairs(keyed) do
    redis.call('ZADD', q_key('queue'), string.format('%d', place), pair[2])
  end
  redis.call('HSET', K_META, 'qdrawn', '1')
  if #tickets > 0 then QUEUE_CHANGED = true end
end

-- Settles the queue before anything reads it: a closed or started show ends it `closed`,
-- lapsed passes end `expired`, a show with nothing free or held ends it `sold_out`, and
-- the opening's draw is made once it is due. seed: '' when the caller has none (the draw
-- then waits for a call that has one).
local function queue_settle(seed)
  local opens, order, ended, drawn = queue_meta()
  if opens == 0 or ended ~= '' then return end
  if not_selling() then
    end_queue('closed')
    return
  end
  local lapsed = redis.call('ZRANGEBYSCORE', q_key('passes'), '-inf', NOW)
  for _, ticket_id in ipairs(lapsed) do end_ticket(ticket_id, 'expired') end
  if #lapsed > 0 then redis.call('HINCRBY', K_META, 'qexpired', #lapsed) end
  local free, held = seat_counts()
  if free + held <= 0 then
    end_queue('sold_out')
    return
  end
  if order == 'shuffle_before_open' and not drawn and NOW >= opens and seed ~= '' then
    draw_order(seed)
  end
end

-- How many may shop at once: the setting, or (0) the free seats over the usual group size.
local function shoppers_allowed(setting, group, free)
  if setting > 0 then return setting end
  return math.max(1, math.ceil(free / math.max(1, group)))
end

-- Admits the next waiting tickets in order while the pace allows: at most `qshoppers`
-- admitted buyers shopping at once and `qrate` admissions a second (a budget that fills
-- at qrate per second up to one second's worth). Only once sales opened, and for a
-- shuffled order only after the draw. Answers how many it admitted.
local function admit()
  local opens, order, ended, drawn = queue_meta()
  if opens == 0 or ended ~= '' or NOW < opens or not_selling() then return 0 end
  if order == 'shuffle_before_open' and not drawn then return 0 end
  local m = redis.call('HMGET', K_META, 'qshoppers', 'qgroup', 'qrate', 'qpass_ms', 'qbudget', 'qbudget_at')
  -- The service's pace comes with every join (queue_join). Before the first one nobody
  -- waits, and a budget reckoned at some other pace must not carry over to the first buyer.
  if not m[3] then return 0 end
  local rate = tonumber(m[3])
  local pass_ms = tonumber(m[4])
  local budget_at = tonumber(m[6] or tostring(opens))
  local budget = math.min(math.max(1, rate), tonumber(m[5] or '0') + (NOW - budget_at) * rate / 1000)
  local free = seat_counts()
  local room = shoppers_allowed(tonumber(m[1] or '0'), tonumber(m[2] or '2'), free)
    - redis.call('ZCARD', q_key('passes'))
  local n = math.min(room, math.floor(budget))
  local admitted = 0
  if n > 0 then
    for _, ticket_id in ipairs(redis.call('ZRANGE', q_key('queue'), '0', string.format('%d', n - 1))) do
      local key = ticket_key(ticket_id)
      local seq = redis.call('HINCRBY', K_META, 'qadmitted', '1')
      local expires = string.format('%d', NOW + pass_ms)
      redis.call('HSET', key, 'status', 'admitted', 'admitted_at', NOW, 'expires_at', expires, 'admit_seq', seq)
      redis.call('ZREM', q_key('queue'), ticket_id)
      redis.call('ZADD', q_key('passes'), expires, ticket_id)
      redis.call('RPUSH', q_key('qwaits'), NOW - tonumber(redis.call('HGET', key, 'joined_at')))
      tell_ticket(ticket_id)
      admitted = admitted + 1
    end
    if redis.call('LLEN', q_key('qwaits')) > 100000 then redis.call('LTRIM', q_key('qwaits'), '-100000', '-1') end
  end
  redis.call('HSET', K_META, 'qbudget', tostring(budget - admitted), 'qbudget_at', NOW)
  return admitted
end

-- A ticket as the engine reads it: {status, position (0: not waiting, or before the
-- opening's draw of a shuffled queue), pass token ('' unless admitted and unused),
-- pass expiry (0), now, sale_opens_at, customer}; {} when unknown.
local function ticket_view(ticket_id)
  local t = redis.call('HMGET', ticket_key(ticket_id), 'status', 'token', 'expires_at', 'used', 'customer')
  if not t[1] then return {} end
  local opens, order, _, drawn = queue_meta()
  local position = 0
  if t[1] == 'waiting' and (order ~= 'shuffle_before_open' or drawn) then
    position = redis.call('ZRANK', q_key('queue'), ticket_id) + 1
  end
  local token, expires = '', 0
  if t[1] == 'admitted' and t[4] ~= '1' then token, expires = t[2], tonumber(t[3]) end
  return {t[1], position, token, expires, NOW, opens, t[5]}
end
