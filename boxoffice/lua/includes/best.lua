-- Best available: the one search for the best free seats of a show, used by holds by
-- count (hold_best-8.lua) and by the waitlist's grants (waitlist.lua). Needs context.lua.
--
-- The score (docs/API.md, "Best available"): a block is `count` seats side by side in
-- one row (consecutive places: never across an aisle), of one category. Its score is
-- the sum of its seats' ranks (lower is better: centred, about two thirds back;
-- engine/catalog.py rank_seats) plus STRAND_PENALTY for each single free seat it would
-- leave between itself and a taken seat, an aisle or the row's end. Lowest score wins;
-- ties go to the lower row label, then the lower place.
--
-- Speed: a show's layout never changes once loaded, so its parsed form (rows in place
-- order, seats in rank order, each seat's position in the status map) is kept in the
-- library's Lua state between calls, checked against the show's `layout_stamp` (set
-- by load_show and index_seats) on every call. It holds nothing a call could change:
-- which seats are free is read from the status map (statusmap.lua, one GET) plus this
-- call's own changes, and the chosen seats are checked against the seats hash.
-- The search walks seats best rank first and stops once no block left can beat the
-- best one found (ranks are distinct integers 0..n-1), so a good free block near the
-- middle ends it after a few seats.

local STRAND_PENALTY = 1000000
-- Parsed layouts of the shows searched lately: at most PLAN_CACHE_MAX (about 0.3 MB of
-- Lua memory each for 2,000 seats); a new one pushes out the least recently used.
local PLAN_CACHE, PLAN_CACHE_SHOWS, PLAN_CACHE_MAX, PLAN_CACHE_CLOCK = {}, 0, 64, 0

local function parse_layout(info)
  local category, row, place, rank, kind = string.match(info, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|?([^|]*)$')
  return category, row, tonumber(place), tonumber(rank), (kind == nil or kind == '') and 'standard' or kind
end

local function by_rank_order(a, b) return a.rank < b.rank end

-- Whether seats are sorted by `field` already (the hall plan's order usually is).
local function in_order(seats, field)
  for i = 2, #seats do
    if seats[i - 1][field] > seats[i][field] then return false end
  end
  return true
end

local function build_plan(stamp)
  local index = {}
  local raw_index = redis.call('HGETALL', K_SEAT_INDEX)
  for i = 1, #raw_index, 2 do index[raw_index[i]] = tonumber(raw_index[i + 1]) + 1 end
  local rows, by_rank, by_id, by_index, indexed = {}, {}, {}, {}, #raw_index > 0
  local layout = redis.call('HGETALL', K_LAYOUT)
  for i = 1, #layout, 2 do
    local category, row, place, rank, kind = parse_layout(layout[i + 1])
    local seat = {id = layout[i], row_label = row, place = place, rank = rank, cat = category,
      kind = kind, idx = index[layout[i]]}
    if seat.idx then by_index[seat.idx] = seat else indexed = false end
    by_id[seat.id] = seat
    rows[row] = rows[row] or {}
    table.insert(rows[row], seat)
    by_rank[#by_rank + 1] = seat
  end
  for _, row in pairs(rows) do
    if not in_order(row, 'place') then table.sort(row, function(a, b) return a.place < b.place end) end
    for pos, seat in ipairs(row) do seat.row, seat.pos = row, pos end
  end
  -- Ranks are 0..n-1 (catalog.py rank_seats): each seat's rank is its place in by_rank.
  local ranked, complete = {}, true
  for _, seat in ipairs(by_rank) do ranked[seat.rank + 1] = seat end
  for i = 1, #by_rank do
    if ranked[i] == nil then complete = false break end
  end
  if complete then by_rank = ranked else table.sort(by_rank, by_rank_order) end
  return {stamp = stamp, by_rank = by_rank, by_id = by_id, by_index = by_index, count = #by_rank,
    indexed = indexed}
end

-- The show's parsed layout, from the cache when its stamp still matches.
local function forget_least_used_plan()
  local oldest, oldest_base = nil, nil
  for base, plan in pairs(PLAN_CACHE) do
    if oldest == nil or plan.used < oldest then oldest, oldest_base = plan.used, base end
  end
  PLAN_CACHE[oldest_base] = nil
  PLAN_CACHE_SHOWS = PLAN_CACHE_SHOWS - 1
end

local function show_plan()
  local stamp = redis.call('HGET', K_META, 'layout_stamp') or 'unstamped'
  local plan = PLAN_CACHE[BASE]
  PLAN_CACHE_CLOCK = PLAN_CACHE_CLOCK + 1
  if plan and plan.stamp == stamp then
    plan.used = PLAN_CACHE_CLOCK
    return plan
  end
  if not plan then
    if PLAN_CACHE_SHOWS >= PLAN_CACHE_MAX then forget_least_used_plan() end
    PLAN_CACHE_SHOWS = PLAN_CACHE_SHOWS + 1
  end
  plan = build_plan(stamp)
  plan.used = PLAN_CACHE_CLOCK
  PLAN_CACHE[BASE] = plan
  return plan
end

-- A test "is this seat free now?": this call's own changes first, then the status map
-- (fast) or a snapshot of the seats hash (exact: when the map is missing or drifted).
local function seat_free_test(plan, exact)
  local map = (not exact) and plan.indexed and redis.call('GET', K_STATUS_MAP)
  if map and #map == plan.count then
    return function(seat)
      local mine = CHANGED_TO[seat.id]
      if mine ~= nil then return mine == false end
      return string.byte(map, seat.idx) == 48  -- '0'
    end, map
  end
  local taken = {}
  local raw = redis.call('HGETALL', K_SEATS)
  for i = 1, #raw, 2 do taken[raw[i]] = true end
  return function(seat)
    local mine = CHANGED_TO[seat.id]
    if mine ~= nil then return mine == false end
    return not taken[seat.id]
  end, nil
end


-- The free seats, in no order: the '0's of the status map, found by string.find
-- (C speed, so a nearly full hall costs what its few free seats cost), and the seats
-- this call freed (the map learns of them when the call finishes).
local function free_anchors(plan, map)
  local out, seen = {}, {}
  local function add(seat)
    if seat and not seen[seat] then
      seen[seat] = true
      out[#out + 1] = seat
    end
  end
  local at = string.find(map, '0', 1, true)
  while at do
    add(plan.by_index[at])
    at = string.find(map, '0', at + 1, true)
  end
  for seat_id, value in pairs(CHANGED_TO) do
    if value == false then add(plan.by_id[seat_id]) end
  end
  return out
end

-- Single free seats a block row[first..last] would leave beside itself (0, 1 or 2).
local function strands(row, first, last, free)
  local count = 0
  local left, left2 = row[first - 1], row[first - 2]
  if left and left.place == row[first].place - 1 and free(left)
      and not (left2 and left2.place == left.place - 1 and free(left2)) then
    count = count + 1
  end
  local right, right2 = row[last + 1], row[last + 2]
  if right and right.place == row[last].place + 1 and free(right)
      and not (right2 and right2.place == right.place + 1 and free(right2)) then
    count = count + 1
  end
  return count
end

local function better(score, seat, best)
  if best == nil or score < best.score then return true end
  if score > best.score then return false end
  if seat.row_label ~= best.row_label then return seat.row_label < best.row_label end
  return seat.place < best.place
end

-- `next` may join a block of `anchor` beside `seat`: the next place, same category, eligible.
local function joins(anchor, seat, next, step, eligible)
  return next ~= nil and next.place == seat.place + step and next.cat == anchor.cat and eligible(next)
end

-- The best block of `count` seats for which eligible(seat) holds, or nil. anchors: the
-- seats a block may grow from (every eligible seat is among them); when `ranked`, best
-- rank first, and the walk stops once no block left can win.
local function best_block(anchors, ranked, count, eligible, free)
  local best = nil
  local tail = count * (count - 1) / 2
  for _, anchor in ipairs(anchors) do
    -- Every block not seen yet has only seats ranked at least this one's.
    if ranked and best and anchor.rank * count + tail > best.score then break end
    if eligible(anchor) then
      local row, pos = anchor.row, anchor.pos
      local lo, hi = pos, pos
      while pos - lo < count - 1 and joins(anchor, row[lo], row[lo - 1], -1, eligible) do lo = lo - 1 end
      while hi - pos < count - 1 and joins(anchor, row[hi], row[hi + 1], 1, eligible) do hi = hi + 1 end
      for first = lo, hi - count + 1 do
        local last = first + count - 1
        local score = 0
        for k = first, last do score = score + row[k].rank end
        score = score + STRAND_PENALTY * strands(row, first, last, free)
        if better(score, row[first], best) then
          best = {score = score, row_label = row[first].row_label, place = row[first].place,
            row = row, first = first}
        end
      end
    end
  end
  if not best then return nil end
  local seats = {}
  for k = best.first, best.first + count - 1 do seats[#seats + 1] = best.row[k].id end
  return seats
end

-- The `count` best-ranked seats for which eligible(seat) holds, or nil.
local function best_scattered(anchors, ranked, count, eligible)
  local found = {}
  for _, seat in ipairs(anchors) do
    if eligible(seat) then
      found[#found + 1] = seat
      if ranked and #found == count then break end
    end
  end
  if #found < count then return nil end
  if not ranked then table.sort(found, by_rank_order) end
  local seats = {}
  for k = 1, count do seats[k] = found[k].id end
  return seats
end

-- The best seats: a block when `together`, else the best by rank. accepts(seat) says
-- whether the caller may have a free seat (category, kind, the queue's claims).
local function find_best(anchors, ranked, count, together, accepts, free)
  local function eligible(seat) return free(seat) and accepts(seat) end
  if together then return best_block(anchors, ranked, count, eligible, free) end
  return best_scattered(anchors, ranked, count, eligible)
end

-- Walking every seat best rank first stops early while many seats are free; with few
-- free, walking only those is cheaper (a quarter: measured, bench/best_available.py).
local function anchors_for(plan, map)
  if not map then return plan.by_rank, true end
  local free = tonumber(redis.call('HGET', K_STATS, 'free') or '0')
  if free * 4 > plan.count then return plan.by_rank, true end
  return free_anchors(plan, map), false
end

-- True when every seat is free in the seats hash (the truth the status map mirrors).
local function all_free(seats)
  for _, value in ipairs(redis.call('HMGET', K_SEATS, unpack(seats))) do
    if value then return false end
  end
  return true
end

-- find_best on the status map, checked against the seats hash; if the map drifted,
-- the search runs again on the seats hash itself.
local function choose_seats(count, together, accepts)
  local plan = show_plan()
  local free, map = seat_free_test(plan, false)
  local anchors, ranked = anchors_for(plan, map)
  local seats = find_best(anchors, ranked, count, together, accepts, free)
  if not map or seats == nil or all_free(seats) then return seats end
  return find_best(plan.by_rank, true, count, together, accepts, (seat_free_test(plan, true)))
end
