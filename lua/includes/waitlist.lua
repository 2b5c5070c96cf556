-- The waitlist: ending entries, granting freed seats in arrival order, and
-- finding entries that lost every chance. Needs context.lua and holds.lua.
--
-- Policy (README, "Waitlist policy"): entries are visited in arrival order;
-- each takes its count of free seats of its category if there are enough,
-- otherwise it claims every free seat it could use, so no later entry may
-- take them. A later, smaller request is served first only with seats no
-- earlier entry could use: rule 1 holds and nobody starves.

local function entry_key(entry_id) return BASE .. 'entry:' .. entry_id end

local function category_field(category)
  if category == '' then return 'wc:*' end
  return 'wc:' .. category
end

local function end_entry(entry_id, status, hold_id)
  local key = entry_key(entry_id)
  local entry = redis.call('HMGET', key, 'customer', 'category', 'count')
  redis.call('ZREM', K_WAITLIST, entry_id)
  if redis.call('HGET', K_WAITERS, entry[1]) == entry_id then
    redis.call('HDEL', K_WAITERS, entry[1])
  end
  if redis.call('HINCRBY', K_META, category_field(entry[2]), -1) <= 0 then
    redis.call('HDEL', K_META, category_field(entry[2]))
  end
  redis.call('HINCRBY', K_STATS, 'waiting', -1)
  redis.call('HSET', key, 'status', status, 'ended_at', NOW)
  if hold_id then redis.call('HSET', key, 'hold_id', hold_id) end
  redis.call('EXPIRE', key, RETENTION_S)
  QUEUE_CHANGED = true
end

-- Is this free seat kept for the queue (some waiting entry could use it)?
local function reserved_for_queue(category)
  if redis.call('ZCARD', K_WAITLIST) == 0 then return false end
  local any = tonumber(redis.call('HGET', K_META, 'wc:*') or '0')
  local mine = tonumber(redis.call('HGET', K_META, 'wc:' .. category) or '0')
  return any > 0 or mine > 0
end

local function parse_layout(info)
  local category, row, number, rank = string.match(info, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  return category, row, tonumber(number), tonumber(rank)
end

-- Free seats as records {id, category, row, number, rank}.
local function free_seats()
  local layout = redis.call('HGETALL', K_LAYOUT)
  local out = {}
  for i = 1, #layout, 2 do
    local seat = layout[i]
    if redis.call('HEXISTS', K_SEATS, seat) == 0 then
      local category, row, number, rank = parse_layout(layout[i + 1])
      out[#out + 1] = {id = seat, category = category, row = row, number = number, rank = rank}
    end
  end
  return out
end

-- Best block of `count` adjacent seats in one row; else the best seats by rank.
local function pick_seats(eligible, count)
  local by_row = {}
  for _, s in ipairs(eligible) do
    by_row[s.row] = by_row[s.row] or {}
    table.insert(by_row[s.row], s)
  end
  local best, best_score = nil, nil
  for _, row in pairs(by_row) do
    table.sort(row, function(a, b) return a.number < b.number end)
    for start = 1, #row - count + 1 do
      local last = row[start + count - 1]
      if last.number - row[start].number == count - 1 then
        local score = 0
        for k = start, start + count - 1 do score = score + row[k].rank end
        if best_score == nil or score < best_score then
          best_score = score
          best = {}
          for k = start, start + count - 1 do best[#best + 1] = row[k].id end
        end
      end
    end
  end
  if best then return best end
  table.sort(eligible, function(a, b) return a.rank < b.rank end)
  local picked = {}
  for k = 1, count do picked[k] = eligible[k].id end
  return picked
end

local function grant_waiters()
  if redis.call('ZCARD', K_WAITLIST) == 0 then return end
  local free = free_seats()
  if #free == 0 then return end
  local claimed = {}
  local unclaimed = #free
  for _, entry_id in ipairs(redis.call('ZRANGE', K_WAITLIST, 0, -1)) do
    if unclaimed == 0 then break end
    local entry = redis.call('HMGET', entry_key(entry_id), 'customer', 'category', 'count')
    local count = tonumber(entry[3])
    local eligible = {}
    for _, s in ipairs(free) do
      if not claimed[s.id] and (entry[2] == '' or entry[2] == s.category) then
        eligible[#eligible + 1] = s
      end
    end
    if #eligible >= count then
      local picked = pick_seats(eligible, count)
      -- The grant's hold id derives from the entry id: only the waiter knows it.
      local hold_id = 'G' .. string.sub(entry_id, 2)
      create_hold(hold_id, entry[1], picked, 'waitlist')
      end_entry(entry_id, 'granted', hold_id)
      redis.call('HINCRBY', K_STATS, 'grants', 1)
      for _, seat in ipairs(picked) do claimed[seat] = true end
      unclaimed = unclaimed - count
    else
      for _, s in ipairs(eligible) do claimed[s.id] = true end
      unclaimed = unclaimed - #eligible
    end
  end
end

-- Seats not sold, per category and in all ("*").
local function unsold_by_category()
  local layout = redis.call('HGETALL', K_LAYOUT)
  local unsold = {['*'] = 0}
  for i = 1, #layout, 2 do
    local value = redis.call('HGET', K_SEATS, layout[i])
    if not value or string.sub(value, 1, 2) ~= 'b:' then
      local category = string.match(layout[i + 1], '^([^|]*)')
      unsold[category] = (unsold[category] or 0) + 1
      unsold['*'] = unsold['*'] + 1
    end
  end
  return unsold
end

local function mark_impossible()
  if redis.call('ZCARD', K_WAITLIST) == 0 then return end
  local unsold = unsold_by_category()
  for _, entry_id in ipairs(redis.call('ZRANGE', K_WAITLIST, 0, -1)) do
    local entry = redis.call('HMGET', entry_key(entry_id), 'category', 'count')
    local category = entry[1] == '' and '*' or entry[1]
    if (unsold[category] or 0) < tonumber(entry[2]) then
      end_entry(entry_id, 'impossible', nil)
    end
  end
end

local function expire_all_waiters()
  for _, entry_id in ipairs(redis.call('ZRANGE', K_WAITLIST, 0, -1)) do
    end_entry(entry_id, 'expired', nil)
  end
end
