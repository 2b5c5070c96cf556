-- unload_show: drops a show's Redis state once it started more than a grace ago
-- (PostgreSQL keeps every sale: the engine reloads the show if anyone reads it again).
-- First settles as every script does (holds past their deadline end `expired`,
-- waiting entries end `expired` since the show started, release queue tickets `closed`) and publishes the changes;
-- then deletes the hold and entry hashes named in the records set, a batch per call,
-- and with the last batch every other key of the show. A hold still live (a confirm's
-- pin still running, a hold time longer than the grace) keeps the show for a later call.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  grace after starts_at, in ms
--   ARGV[5]  most hold and entry hashes to delete in this call
-- Output:
--   -1 when the show is not loaded, else {state, keys_deleted}:
--   state 0 kept (not past the grace, or a hold is still live), 1 deleted a batch of
--   hold and entry hashes: call again, 2 unloaded (every key of the show is gone)
--@include context
--@include holds
--@include waitlist
--@include settle
--@include queue
if not LOADED then return -1 end
begin()
settle_due()
queue_settle('')
if STARTS_AT <= 0 or STARTS_AT + tonumber(ARGV[4]) > NOW or first_deadline() then
  return finish({0, 0})
end
-- Published before the keys go: the message reads the meta hash (the queue's categories).
publish_changes()
local deleted = 0
for _, suffix in ipairs(redis.call('SPOP', K_RECORDS, tonumber(ARGV[5]))) do
  deleted = deleted + redis.call('DEL', BASE .. suffix)
end
if redis.call('SCARD', K_RECORDS) > 0 then
  return {{1, deleted}, 0, 0, EXPIRED_LATE_MS or NONE, GRANT_WAITS_MS or NONE}
end
local names = {K_META, K_LAYOUT, K_SEATS, K_DEADLINES, K_CUSTOMERS, K_WAITLIST, K_WAITERS, K_STATS,
  K_STATUS_MAP, K_SEAT_INDEX, K_RECORDS, BASE .. 'wake', BASE .. 'wanted', wanted_key(''),
  -- the release queue's (includes/queue.lua; tickets are in the records set)
  BASE .. 'queue', BASE .. 'queuers', BASE .. 'passes', BASE .. 'passtokens', BASE .. 'qwaits'}
-- The queue's per-category trees (empty once every entry ended, but never left behind).
local seen = {}
for _, info in ipairs(redis.call('HVALS', K_LAYOUT)) do
  local category = string.match(info, '^([^|]*)')
  if not seen[category] then
    seen[category] = true
    if category ~= '' then names[#names + 1] = wanted_key(category) end
  end
end
deleted = deleted + redis.call('DEL', unpack(names))
return {{2, deleted}, 0, 0, EXPIRED_LATE_MS or NONE, GRANT_WAITS_MS or NONE}
