-- queue_info: the show's release queue for GET /v1/shows/{id}.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
-- Output:
--   {sale_opens_at (ms, 0: none), order, active (1|0), waiting, end ('' while running)}
--@include context
--@include holds
--@include waitlist
--@include settle
--@include queue
if not LOADED then return -1 end
begin()
local opens, order, ended = queue_meta()
return finish({opens, order, queue_active() and 1 or 0, redis.call('ZCARD', q_key('queue')), ended})
