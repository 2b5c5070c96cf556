-- listen: a process serves a live stream of this show (engine/redis/pubsub.py, EventHub) and
-- needs its change messages, which the scripts publish only while someone listens
-- (context.lua, LISTENED_UNTIL): the show's listened_until becomes at least now + lease.
-- A lease that starts while none runs (none yet, it ran out, or the show was loaded again)
-- sets listened_since to now: a process that finds listened_since changed since its last
-- call knows a change may have gone unpublished in between, and its streams read afresh.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  lease in ms (the process calls again well before it runs out)
-- Output:
--   -1 when the show is not loaded, else listened_since (ms)
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
begin()
local since
if LISTENED_UNTIL < NOW then
  since = string.format('%d', NOW)
  redis.call('HSET', K_META, 'listened_since', since)
else
  since = redis.call('HGET', K_META, 'listened_since') or '0'
end
local until_ms = NOW + tonumber(ARGV[4])
if until_ms > LISTENED_UNTIL then
  redis.call('HSET', K_META, 'listened_until', string.format('%d', until_ms))
  LISTENED_UNTIL = until_ms
end
return finish(since)
