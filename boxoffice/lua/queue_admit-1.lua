-- queue_admit: the sweeper's tick for a show with a release queue: settles the queue
-- (lapsed passes, the opening's draw, sold out, closed) and admits as the pace allows.
-- Also hands the metrics what happened since the last tick.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  seed of the opening's draw (hex), should this call be the first after it
-- Output:
--   {admitted now, running (1 while the queue runs or waits for its opening; 0: no queue
--    or ended), waiting, shopping, passes lapsed since the last tick, {wait ms...}}
--@include context
--@include holds
--@include waitlist
--@include settle
--@include queue
if not LOADED then return -1 end
begin()
settle_due()
queue_settle(ARGV[4])
local admitted = admit()
local opens, _, ended = queue_meta()
local lapsed = tonumber(redis.call('HGET', K_META, 'qexpired') or '0')
if lapsed > 0 then redis.call('HDEL', K_META, 'qexpired') end
local waits = redis.call('LRANGE', q_key('qwaits'), '0', '-1')
if #waits > 0 then redis.call('DEL', q_key('qwaits')) end
local running = (opens > 0 and ended == '') and 1 or 0
return finish({admitted, running, redis.call('ZCARD', q_key('queue')), redis.call('ZCARD', q_key('passes')),
  lapsed, waits})
