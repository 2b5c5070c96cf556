-- The checks a hold call (hold_seats-1.lua, hold_best-1.lua) makes before it looks at seats,
-- in this order: the abuse limits, then the hold id (a call sent again answers the hold it
-- made) and whether the show sells, then the gate (sales open, a queue pass).
-- Needs context.lua, holds.lua, gate.lua and ratelimit.lua.

-- Answers the refusal to return (nil: go on) and, second, the ticket whose pass the hold
-- uses once it is made (use_pass, gate.lua).
--   limits      "<customer limit>|<address limit>|<address>" (ratelimit.lua)
--   pass_token  the queue pass ("" none)
local function refused_before_seats(hold_id, customer, limits, pass_token)
  local limited = over_rate_limit(limits, customer)
  if limited then return limited, nil end
  local early = replayed_or_refused_hold(hold_id)
  if early then return early, nil end
  return gate(customer, pass_token)
end
