-- Settle first, then act: every script of a show ends the holds whose deadline
-- passed (and the queue once the show started) before it reads or changes
-- anything, so no answer ever shows a seat held past its deadline.
-- Needs context.lua, holds.lua and waitlist.lua.
--@include statusmap

local function settle_due()
  -- Nothing is due while the earliest deadline is later (most calls): no range read then.
  local first = first_deadline()
  local due = NONE
  if first and first <= NOW then
    due = redis.call('ZRANGEBYSCORE', K_DEADLINES, '-inf', NOW, 'WITHSCORES', 'LIMIT', '0', '1000')
  end
  local freed = 0
  for i = 1, #due, 2 do
    local status = redis.call('HGET', hold_key(due[i]), 'status')
    freed = freed + end_hold(due[i], 'expired', 'holds_unpaid')
    if status == 'active' or status == 'confirming' then
      EXPIRED_LATE_MS = appended(EXPIRED_LATE_MS, NOW - tonumber(due[i + 1]))
    end
  end
  if CLOSED then
    end_all_waiters('cancelled')
  elseif STARTED then
    end_all_waiters('expired')
  elseif freed > 0 then
    grant_waiters()
  end
  return #due / 2
end

-- When the sweeper should look at this show next (0: nothing pending).
-- first: the earliest hold deadline (first_deadline()).
local function next_wake(first)
  local wake = first or 0
  if WAITING > 0 and (wake == 0 or STARTS_AT < wake) then wake = STARTS_AT end
  return wake
end

-- A seat's status in the change message, by its status map character; with the comma that
-- follows it when more seats do.
local SEAT_STATUS = {['0'] = '=available', h = '=held', b = '=booked'}
local SEAT_STATUS_THEN = {['0'] = '=available,', h = '=held,', b = '=booked,'}

-- "<seat>=<status>,..." of the seats this call changed. Most calls change seats to one
-- status (a hold, a release, an expiry): one table.concat then, no string per seat (each
-- string made is garbage Lua collects, a cost that showed in a hold's time).
local function changed_seats_text()
  if #CHANGED == 0 then return '' end
  local first = map_char(CHANGED_TO[CHANGED[1]])  -- (statusmap.lua)
  for i = 2, #CHANGED do
    if map_char(CHANGED_TO[CHANGED[i]]) ~= first then
      local pieces = {}
      for j, seat in ipairs(CHANGED) do
        pieces[j] = seat .. SEAT_STATUS[map_char(CHANGED_TO[seat])]
      end
      return table.concat(pieces, ',')
    end
  end
  return table.concat(CHANGED, SEAT_STATUS_THEN[first]) .. SEAT_STATUS[first]
end

-- One message per call for live seat maps and waitlist streams (engine/events.py):
-- "<queue changed 0|1>;<seat>=<available|held|booked>,...;<categories the queue
-- waits for, "*": any>;<entries this call ended>". Seat statuses are the seats'
-- own; listeners show the free seats of the waited categories as held (they are
-- the queue's: waiters first, docs/DESIGN.md). Published only while some process serves a
-- live stream of the show (LISTENED_UNTIL, context.lua): no one else reads them.
local function publish_changes()
  if #CHANGED == 0 and not QUEUE_CHANGED then return end
  if LISTENED_UNTIL < NOW then return end
  redis.call('PUBLISH', K_CHANGES, (QUEUE_CHANGED and '1;' or '0;') .. changed_seats_text() .. ';'
    .. table.concat(reserved_categories(), ',') .. ';' .. table.concat(ENDED_ENTRIES or NONE, ','))
end

-- Every show script calls begin() first and returns finish(result): the caller
-- gets {result, next_wake, reindex, expired_late_ms, grant_waits_ms}, the two lists
-- left out when both are empty (most calls: Redis turning two empty tables into the
-- reply was about 3 % of a hold).
-- reindex is 1 when this call made the show's next wake earlier than it was (from
-- nothing pending, or from a later wake: a new hold, a first waiter before the
-- start, a declined payment restoring an earlier deadline): the engine then lowers
-- the show's score in the sweep index to next_wake, so expiry is never late by more
-- than the sweeper's timer. The two lists feed the metrics (see context.lua).
local function begin()
  START_WAKE = next_wake(first_deadline())
end

local function finish(result)
  publish_changes()
  local first = first_deadline()
  local wake = next_wake(first)
  store_first_deadline(first or 0)
  local reindex = (wake > 0 and (START_WAKE == 0 or wake < START_WAKE)) and 1 or 0
  if EXPIRED_LATE_MS == nil and GRANT_WAITS_MS == nil then return {result, wake, reindex} end
  return {result, wake, reindex, EXPIRED_LATE_MS or NONE, GRANT_WAITS_MS or NONE}
end
