-- confirm_check: just before the sale is committed, proves the pin is still
-- this confirm's (its fence, not lapsed) and the show still sells, and renews the
-- pin, so the commit cannot outlive it. A stale confirm gets 0 and must not commit.
-- Idempotent: renewing again only moves the pin's end.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  hold id
--   ARGV[5]  fence of this confirm
--   ARGV[6]  pin time to renew to, ms
-- Output:
--   1 the pin is ours (renewed), 0 it is not: do not commit
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
begin()
settle_due()
local key = hold_key(ARGV[4])
local hold = redis.call('HMGET', key, 'status', 'fence', 'pinned_until', 'expires_at')
if hold[1] ~= 'confirming' or hold[2] ~= ARGV[5] then return finish(0) end
if tonumber(hold[3]) <= NOW or not_selling() then return finish(0) end
local pinned_until = NOW + tonumber(ARGV[6])
redis.call('HSET', key, 'pinned_until', pinned_until)
redis.call('ZADD', K_DEADLINES, math.max(pinned_until, tonumber(hold[4])), ARGV[4])
FIRST_DEADLINE_KNOWN = false
return finish(1)
