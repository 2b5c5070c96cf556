-- The waitlist: ending entries, granting freed seats in arrival order, and
-- finding entries that lost every chance. Needs context.lua and holds.lua.
--
-- Policy (docs/WAITLIST.md): entries are visited in arrival order; each takes
-- its count of free seats of its category if there are enough, otherwise it
-- claims every free seat it could use, so no later entry may take them. A
-- later, smaller request is served first only with seats no earlier entry
-- could use: arrival order holds and nobody starves (docs/DESIGN.md, "Rules").
--
-- Entry hash (BASE .. 'entry:' .. id): customer, count, category ("" = any),
-- arrival, status, created_at; once ended also ended_at, end_seq (a per-show
-- counter: the order in which entries ended, for audits) and hold_id (granted).
--@include best

local function entry_key(entry_id) return BASE .. 'entry:' .. entry_id end

local function category_field(category)
  if category == '' then return 'wc:*' end
  return 'wc:' .. category
end

-- Seats wanted by the waiting entries, as Fenwick trees over arrival numbers (one
-- hash each: BASE .. 'wanted' for all entries, BASE .. 'wanted:<category>' per
-- category, '*' for any), so the seats wanted ahead of any entry cost O(log n).
local WANTED_SIZE = 16777216  -- arrivals per show (2^24)

local function lowest_bit(i)
  local b = 1
  while i % (b * 2) == 0 do b = b * 2 end
  return b
end

local function fenwick_add(key, i, delta)
  while i <= WANTED_SIZE do
    if redis.call('HINCRBY', key, i, delta) == 0 then redis.call('HDEL', key, i) end
    i = i + lowest_bit(i)
  end
end

local function fenwick_prefix(key, i)
  local sum = 0
  while i > 0 do
    sum = sum + tonumber(redis.call('HGET', key, i) or '0')
    i = i - lowest_bit(i)
  end
  return sum
end

local function wanted_key(category)
  return BASE .. 'wanted:' .. (category == '' and '*' or category)
end

local function track_wanted(category, arrival, delta)
  fenwick_add(BASE .. 'wanted', arrival, delta)
  fenwick_add(wanted_key(category), arrival, delta)
end

-- Seats wanted by the waiting entries ahead of `arrival` that compete with an entry
-- of `category`: all of them for "any", else those of any category or this one.
local function wanted_before(category, arrival)
  if category == '' then return fenwick_prefix(BASE .. 'wanted', arrival - 1) end
  return fenwick_prefix(wanted_key(''), arrival - 1) + fenwick_prefix(wanted_key(category), arrival - 1)
end

-- Queues a new entry at the next arrival number; answers the arrival.
local function add_entry(entry_id, customer, count, category)
  local arrival = redis.call('HINCRBY', K_META, 'waitseq', '1')
  redis.call('ZADD', K_WAITLIST, arrival, entry_id)
  WAITING = WAITING + 1
  redis.call('HSET', entry_key(entry_id), 'customer', customer, 'count', count,
    'category', category, 'arrival', arrival, 'status', 'waiting', 'created_at', NOW)
  redis.call('SADD', K_RECORDS, 'entry:' .. entry_id)
  redis.call('HSET', K_WAITERS, customer, entry_id)
  redis.call('HINCRBY', K_META, category_field(category), '1')
  redis.call('HINCRBY', K_STATS, 'waiting', '1')
  track_wanted(category, arrival, count)
  QUEUE_CHANGED = true
  return arrival
end

local function end_entry(entry_id, status, hold_id)
  local key = entry_key(entry_id)
  local entry = redis.call('HMGET', key, 'customer', 'category', 'count', 'arrival')
  redis.call('ZREM', K_WAITLIST, entry_id)
  WAITING = WAITING - 1
  track_wanted(entry[2], tonumber(entry[4]), -tonumber(entry[3]))
  if redis.call('HGET', K_WAITERS, entry[1]) == entry_id then
    redis.call('HDEL', K_WAITERS, entry[1])
  end
  if redis.call('HINCRBY', K_META, category_field(entry[2]), '-1') <= 0 then
    redis.call('HDEL', K_META, category_field(entry[2]))
  end
  redis.call('HINCRBY', K_STATS, 'waiting', '-1')
  local seq = redis.call('HINCRBY', K_META, 'endseq', '1')
  redis.call('HSET', key, 'status', status, 'ended_at', NOW, 'end_seq', seq)
  if hold_id then redis.call('HSET', key, 'hold_id', hold_id) end
  redis.call('EXPIRE', key, RETENTION_S)
  ENDED_ENTRIES = appended(ENDED_ENTRIES, entry_id)
  QUEUE_CHANGED = true
end

-- The customer limit of a hold, checked last, once its seats are known to be free: counts
-- `count` more seats for the customer (one HINCRBY, no read first) and answers nil; or, when
-- that takes them past `limit` together with the seats their waiting entry asks for (the
-- limit counts both), counts them back and answers {-3, seats held before}. The hold then
-- calls create_hold with `counted` (holds.lua).
local function customer_takes(customer, count, limit)
  local held = redis.call('HINCRBY', K_CUSTOMERS, customer, string.format('%d', count)) - count
  -- (only waiting entries are in the waiters hash: none while the waitlist is empty)
  local waiting_entry = WAITING > 0 and redis.call('HGET', K_WAITERS, customer)
  if waiting_entry then
    held = held + tonumber(redis.call('HGET', entry_key(waiting_entry), 'count') or '0')
  end
  if held + count <= limit then return nil end
  release_customer_count(customer, count)
  return {-3, held}
end

-- Is a free seat of this category kept for the queue (some waiting entry could use it)?
local function reserved_for_queue(category)
  if WAITING == 0 then return false end
  local any = tonumber(redis.call('HGET', K_META, 'wc:*') or '0')
  local mine = tonumber(redis.call('HGET', K_META, 'wc:' .. category) or '0')
  return any > 0 or mine > 0
end

-- The categories the queue waits for ("*": any), sorted: their free seats are the queue's.
local function reserved_categories()
  if WAITING == 0 then return NONE end
  local out = {}
  local meta = redis.call('HGETALL', K_META)
  for i = 1, #meta, 2 do
    if string.sub(meta[i], 1, 3) == 'wc:' and tonumber(meta[i + 1]) > 0 then
      out[#out + 1] = string.sub(meta[i], 4)
    end
  end
  table.sort(out)
  return out
end

-- Seat -> 'b' for every booked seat (the seats hash keeps only those).
local function booked_seats()
  local booked = {}
  local raw = redis.call('HGETALL', K_SEATS)
  for i = 1, #raw, 2 do booked[raw[i]] = string.sub(raw[i + 1], 1, 1) end
  return booked
end

-- Free seats as records {id, category}: the '0's of the status map.
local function free_seats()
  local plan = show_plan()
  local map = status_map()
  local out = {}
  if not map then return out end
  local at = string.find(map, '0', 1, true)
  while at do
    local s = plan.by_index[at]
    if s then out[#out + 1] = {id = plan.id[s], category = plan.cat[s]} end
    at = string.find(map, '0', at + 1, true)
  end
  return out
end

-- The seats granted to an entry: the best block of `count` seats among `eligible`
-- (the free seats it may have), else its `count` best seats by rank; the same search
-- and score as a hold by count (best.lua).
-- free_ids: the seats free now (grant_waiters takes out each grant's seats as it makes it).
local function pick_seats(eligible, count, free_ids)
  local plan = show_plan()
  local ids = plan.id
  local allowed, anchors = {}, {}
  for _, s in ipairs(eligible) do
    allowed[s.id] = true
    anchors[#anchors + 1] = plan.by_id[s.id]
  end
  local function accepts(_, seat) return allowed[ids[seat]] == true end
  local function free(seat) return free_ids[ids[seat]] == true end
  return find_best(plan, anchors, false, count, true, accepts, free)
    or find_best(plan, anchors, false, count, false, accepts, free)
end

-- Settle before granting: a show that started or closed grants nothing (settle_due
-- ends its queue instead).
local function grant_waiters()
  if WAITING == 0 or not_selling() then return end
  if seat_counts() <= 0 then return end
  local free = free_seats()
  local free_ids = {}
  for _, s in ipairs(free) do free_ids[s.id] = true end
  local claimed = {}
  local unclaimed = #free
  for _, entry_id in ipairs(redis.call('ZRANGE', K_WAITLIST, '0', '-1')) do
    if unclaimed == 0 then break end
    local entry = redis.call('HMGET', entry_key(entry_id), 'customer', 'category', 'count', 'created_at')
    local count = tonumber(entry[3])
    local eligible = {}
    for _, s in ipairs(free) do
      if not claimed[s.id] and (entry[2] == '' or entry[2] == s.category) then
        eligible[#eligible + 1] = s
      end
    end
    if #eligible >= count then
      local picked = pick_seats(eligible, count, free_ids)
      -- The grant's hold id derives from the entry id: only the waiter knows it.
      local hold_id = 'G' .. string.sub(entry_id, 2)
      create_hold(hold_id, entry[1], picked, 'waitlist')
      end_entry(entry_id, 'granted', hold_id)
      redis.call('HINCRBY', K_STATS, 'grants', '1')
      GRANT_WAITS_MS = appended(GRANT_WAITS_MS, NOW - tonumber(entry[4]))
      for _, seat in ipairs(picked) do
        claimed[seat], free_ids[seat] = true, nil  -- (held now: no longer free for the next choice)
      end
      unclaimed = unclaimed - count
    else
      -- Not enough yet: the entry claims what it could use; nobody behind takes it.
      for _, s in ipairs(eligible) do claimed[s.id] = true end
      unclaimed = unclaimed - #eligible
    end
  end
end

-- Seats not sold in all (from the counts, no scan).
local function unsold_total()
  local free, held = seat_counts()
  return free + held
end

-- Seats not sold, per category and in all ("*").
local function unsold_by_category()
  local taken = booked_seats()
  local layout = redis.call('HGETALL', K_LAYOUT)
  local unsold = {['*'] = 0}
  for i = 1, #layout, 2 do
    if taken[layout[i]] ~= 'b' then
      local category = string.match(layout[i + 1], '^([^|]*)')
      unsold[category] = (unsold[category] or 0) + 1
      unsold['*'] = unsold['*'] + 1
    end
  end
  return unsold
end

-- Entries whose request can never be met any more (too few unsold seats) end `impossible`.
local function mark_impossible()
  if WAITING == 0 then return end
  local unsold = unsold_by_category()
  for _, entry_id in ipairs(redis.call('ZRANGE', K_WAITLIST, '0', '-1')) do
    local entry = redis.call('HMGET', entry_key(entry_id), 'category', 'count')
    local category = entry[1] == '' and '*' or entry[1]
    if (unsold[category] or 0) < tonumber(entry[2]) then
      end_entry(entry_id, 'impossible', nil)
    end
  end
end

-- Ends every waiting entry: `expired` when the show started, `cancelled` when it closed.
local function end_all_waiters(status)
  if WAITING == 0 then return end
  for _, entry_id in ipairs(redis.call('ZRANGE', K_WAITLIST, '0', '-1')) do
    end_entry(entry_id, status, nil)
  end
end

