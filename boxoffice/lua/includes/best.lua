-- Best available: the one search for the best free seats of a show, used by holds by
-- count (hold_best-1.lua) and by the waitlist's grants (waitlist.lua). Needs context.lua.
--
-- The score (docs/API.md, "Best available"): a block is `count` seats side by side in
-- one row (consecutive places: never across an aisle), of one category. Its score is
-- the sum of its seats' ranks (lower is better: centred, about two thirds back;
-- engine/catalog.py rank_seats) plus STRAND_PENALTY for each single free seat it would
-- leave between itself and a taken seat, an aisle or the row's end. Lowest score wins;
-- ties go to the lower row label, then the lower place.
--
-- Speed: a show's layout never changes once loaded, so its parsed form (rows in place
-- order, seats in rank order, each seat's position in the status map; flat arrays by
-- seat number, about 0.4 MB of Lua memory for 2,000 seats) is kept in the library's Lua
-- state between calls, checked against the show's `layout_stamp` (set
-- by load_show and index_seats) on every call. It holds nothing a call could change:
-- which seats are free is read from the status map (statusmap.lua, one GET: the seats'
-- truth) plus this call's own changes since.
-- The search walks seats best rank first and stops once no block left can beat the
-- best one found (ranks are distinct integers 0..n-1), so a good free block near the
-- middle ends it after a few seats.

local STRAND_PENALTY = 1000000
-- Parsed layouts of the shows searched lately: at most PLAN_CACHE_MAX; a new one pushes
-- out the least recently used (parsing costs a few milliseconds of Redis once a show).
local PLAN_CACHE, PLAN_CACHE_SHOWS, PLAN_CACHE_MAX, PLAN_CACHE_CLOCK = {}, 0, 32, 0

local function parse_layout(info)
  local category, row, place, rank, kind = string.match(info, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|?([^|]*)$')
  return category, row, tonumber(place), tonumber(rank), (kind == nil or kind == '') and 'standard' or kind
end

-- A plan: seats numbered 1..n in flat arrays (id, place, rank, cat, kind, idx: position
-- in the status map or 0, row: row number, pos: position in the row), rows[r]: the
-- row's seat numbers in place order, row_label[r], by_rank: seat numbers best first,
-- by_id: id -> seat number, by_index: status map position -> seat number.
local function build_plan(stamp)
  local index = {}
  local raw_index = redis.call('HGETALL', K_SEAT_INDEX)
  if #raw_index == 0 and redis.call('EXISTS', K_LAYOUT) == 1 then
    -- An older library's show: numbered now (statusmap.lua), under a new stamp.
    build_provisional_index()
    stamp = redis.call('HGET', K_META, 'layout_stamp')
    raw_index = redis.call('HGETALL', K_SEAT_INDEX)
  end
  for i = 1, #raw_index, 2 do index[raw_index[i]] = tonumber(raw_index[i + 1]) + 1 end
  local P = {stamp = stamp, id = {}, place = {}, rank = {}, cat = {}, kind = {}, idx = {}, row = {}, pos = {},
    rows = {}, row_label = {}, by_id = {}, by_index = {}, indexed = #raw_index > 0}
  local row_number = {}
  local layout = redis.call('HGETALL', K_LAYOUT)
  local n = 0
  for i = 1, #layout, 2 do
    n = n + 1
    local category, row, place, rank, kind = parse_layout(layout[i + 1])
    P.id[n], P.place[n], P.rank[n], P.cat[n], P.kind[n] = layout[i], place, rank, category, kind
    P.idx[n] = index[layout[i]] or 0
    if P.idx[n] > 0 then P.by_index[P.idx[n]] = n else P.indexed = false end
    P.by_id[layout[i]] = n
    local r = row_number[row]
    if not r then
      r = #P.rows + 1
      row_number[row], P.rows[r], P.row_label[r] = r, {}, row
    end
    P.row[n] = r
    table.insert(P.rows[r], n)
  end
  P.n = n
  local place = P.place
  for _, seats in ipairs(P.rows) do
    table.sort(seats, function(a, b) return place[a] < place[b] end)
    for pos, seat in ipairs(seats) do P.pos[seat] = pos end
  end
  -- Ranks are 0..n-1 (catalog.py rank_seats): each seat's rank is its place in by_rank.
  local by_rank, complete = {}, true
  for seat = 1, n do by_rank[P.rank[seat] + 1] = seat end
  for i = 1, n do
    if by_rank[i] == nil then complete = false break end
  end
  if not complete then
    by_rank = {}
    for seat = 1, n do by_rank[seat] = seat end
    table.sort(by_rank, function(a, b) return P.rank[a] < P.rank[b] end)
  end
  P.by_rank = by_rank
  return P
end

local function forget_least_used_plan()
  local oldest, oldest_base = nil, nil
  for base, plan in pairs(PLAN_CACHE) do
    if oldest == nil or plan.used < oldest then oldest, oldest_base = plan.used, base end
  end
  PLAN_CACHE[oldest_base] = nil
  PLAN_CACHE_SHOWS = PLAN_CACHE_SHOWS - 1
end

-- The show's parsed layout, from the cache when its stamp still matches.
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

-- A test "is seat number s free now?" on the status map as read now (every change a call
-- makes is written to the map at once: statusmap.lua), for a choice that changes nothing
-- before it is made. Answers the test and the map it reads (nil: the show has no map,
-- nothing is free). Not the change message's notes (CHANGED_TO): they are kept only
-- while someone streams the show.
local function seat_free_test(P)
  local map = status_map()
  local idx = P.idx
  if map and #map == P.n then
    return function(s) return string.byte(map, idx[s]) == 48 end, map  -- '0'
  end
  return function() return false end, nil
end

-- The free seats, in no order: the '0's of the status map, found by string.find (C
-- speed, so a nearly full hall costs what its few free seats cost).
local function free_anchors(P, map)
  local out = {}
  local at = string.find(map, '0', 1, true)
  while at do
    local s = P.by_index[at]  -- (each position once)
    if s then out[#out + 1] = s end
    at = string.find(map, '0', at + 1, true)
  end
  return out
end

-- Single free seats a block row[first..last] would leave beside itself (0, 1 or 2).
local function strands(P, row, first, last, free)
  local place, count = P.place, 0
  local left, left2 = row[first - 1], row[first - 2]
  if left and place[left] == place[row[first]] - 1 and free(left)
      and not (left2 and place[left2] == place[left] - 1 and free(left2)) then
    count = count + 1
  end
  local right, right2 = row[last + 1], row[last + 2]
  if right and place[right] == place[row[last]] + 1 and free(right)
      and not (right2 and place[right2] == place[right] + 1 and free(right2)) then
    count = count + 1
  end
  return count
end

local function better(P, score, r, first_seat, best)
  if best == nil or score < best.score then return true end
  if score > best.score then return false end
  if P.row_label[r] ~= P.row_label[best.r] then return P.row_label[r] < P.row_label[best.r] end
  return P.place[first_seat] < P.place[best.row[best.first]]
end

-- `next` may join a block of `anchor` beside `seat`: the next place, same category, eligible.
local function joins(P, anchor, seat, next, step, eligible)
  return next ~= nil and P.place[next] == P.place[seat] + step and P.cat[next] == P.cat[anchor] and eligible(next)
end

-- The best block of `count` seats for which eligible(s) holds, or nil. anchors: the
-- seats a block may grow from (every eligible seat is among them); when `ranked`, best
-- rank first, and the walk stops once no block left can win.
local function best_block(P, anchors, ranked, count, eligible, free)
  local best = nil
  local tail = count * (count - 1) / 2
  local rank = P.rank
  for _, anchor in ipairs(anchors) do
    -- Every block not seen yet has only seats ranked at least this one's.
    if ranked and best and rank[anchor] * count + tail > best.score then break end
    if eligible(anchor) then
      local r = P.row[anchor]
      local row, pos = P.rows[r], P.pos[anchor]
      local lo, hi = pos, pos
      -- Unranked, every eligible seat is an anchor: each block is seen from its first seat.
      while ranked and pos - lo < count - 1 and joins(P, anchor, row[lo], row[lo - 1], -1, eligible) do
        lo = lo - 1
      end
      while hi - pos < count - 1 and joins(P, anchor, row[hi], row[hi + 1], 1, eligible) do hi = hi + 1 end
      for first = lo, hi - count + 1 do
        local last = first + count - 1
        local score = 0
        for k = first, last do score = score + rank[row[k]] end
        score = score + STRAND_PENALTY * strands(P, row, first, last, free)
        if better(P, score, r, row[first], best) then
          best = {score = score, r = r, row = row, first = first}
        end
      end
    end
  end
  if not best then return nil end
  local seats = {}
  for k = best.first, best.first + count - 1 do seats[#seats + 1] = P.id[best.row[k]] end
  return seats
end

-- The `count` best-ranked seats for which eligible(s) holds, or nil.
local function best_scattered(P, anchors, ranked, count, eligible)
  local found = {}
  for _, s in ipairs(anchors) do
    if eligible(s) then
      found[#found + 1] = s
      if ranked and #found == count then break end
    end
  end
  if #found < count then return nil end
  if not ranked then
    local rank = P.rank
    table.sort(found, function(a, b) return rank[a] < rank[b] end)
  end
  local seats = {}
  for k = 1, count do seats[k] = P.id[found[k]] end
  return seats
end

-- The best seats: a block when `together`, else the best by rank. accepts(P, s) says
-- whether the caller may have free seat s (category, kind, the queue's claims).
local function find_best(P, anchors, ranked, count, together, accepts, free)
  local function eligible(s) return free(s) and accepts(P, s) end
  if together then return best_block(P, anchors, ranked, count, eligible, free) end
  return best_scattered(P, anchors, ranked, count, eligible)
end

-- Walking every seat best rank first stops early while many seats are free; with few
-- free, walking only those is cheaper (a quarter: measured, bench/best_available.py).
local function anchors_for(P, map, free_count)
  if not map then return P.by_rank, true end
  if free_count * 4 > P.n then return P.by_rank, true end
  return free_anchors(P, map), false
end

-- find_best on the status map; free_count: the show's free seats (seat_counts, context.lua).
local function choose_seats(count, together, accepts, free_count)
  local P = show_plan()
  local free, map = seat_free_test(P)
  local anchors, ranked = anchors_for(P, map, free_count)
  return find_best(P, anchors, ranked, count, together, accepts, free)
end

-- The first free seat that holding `seats` (ids, all free) would leave alone between
-- taken seats, an aisle or the row's end; nil when none. Reads the status map.
local function stranded_by(seats)
  local P = show_plan()
  local asked = {}
  for _, seat_id in ipairs(seats) do asked[seat_id] = true end
  local free_now = seat_free_test(P)
  local function free(s)
    return not asked[P.id[s]] and free_now(s)
  end
  local place = P.place
  for _, seat_id in ipairs(seats) do
    local s = P.by_id[seat_id]
    local row, pos = P.rows[P.row[s]], P.pos[s]
    for _, step in ipairs({-1, 1}) do
      local beside, beyond = row[pos + step], row[pos + 2 * step]
      if beside and place[beside] == place[s] + step and free(beside)
          and not (beyond and place[beyond] == place[beside] + step and free(beyond)) then
        return P.id[beside]
      end
    end
  end
  return nil
end
