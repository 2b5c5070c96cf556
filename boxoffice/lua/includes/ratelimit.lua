-- The abuse limits (docs/API.md, "Limits"), counted inside the hold and join scripts, so a
-- limit costs no round trip of its own. Fixed one-minute windows on Redis's clock (key
-- expiry), one counter per customer and one per client address, both of this show: their
-- keys live under the show's base, in its cluster slot. Holds and joins share them.
-- The scripts take one argument for it, "<customer limit>|<address limit>|<address>":
-- a limit of 0 turns that count off; an empty address is not counted; "" when both are off
-- (nothing to parse: engine/redis/gateway.py, RateLimits.arg).
local RATE_WINDOW_MS = '60000'

-- Counts one request; the seconds until the window ends when it is over `limit`, else nil.
local function rate_count(key, limit)
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, RATE_WINDOW_MS) end
  if count <= limit then return nil end
  local left_ms = redis.call('PTTL', key)
  if left_ms < 0 then  -- a counter without its window (never left so): give it one
    redis.call('PEXPIRE', key, RATE_WINDOW_MS)
    left_ms = tonumber(RATE_WINDOW_MS)
  end
  return math.max(1, math.ceil(left_ms / 1000))
end

-- {-20, retry_after_s, "address"|"customer"} when this request is over a limit, else nil.
-- The address is counted first: a request it refuses is not counted for the customer.
local function over_rate_limit(spec, customer)
  if spec == '' then return nil end
  local customer_limit, address_limit, address = string.match(spec, '^(%d+)|(%d+)|(.*)$')
  if not customer_limit then return nil end
  address_limit = tonumber(address_limit)
  if address_limit > 0 and address ~= '' then
    local retry = rate_count(BASE .. 'rate:a:' .. address, address_limit)
    if retry then return {-20, retry, 'address'} end
  end
  customer_limit = tonumber(customer_limit)
  if customer_limit > 0 then
    local retry = rate_count(BASE .. 'rate:c:' .. customer, customer_limit)
    if retry then return {-20, retry, 'customer'} end
  end
  return nil
end
