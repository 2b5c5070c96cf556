-- queue_join: a customer joins the show's release queue (includes/queue.lua).
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  ticket id (unguessable, made by the engine; starts with "Q")
--   ARGV[5]  customer
--   ARGV[6]  pass token for this ticket (random, made by the engine; shown once admitted)
--   ARGV[7]  how long before sale_opens_at joining opens (ms)
--   ARGV[8]  most admitted buyers shopping at once (0: the free seats over ARGV[9])
--   ARGV[9]  usual group size
--   ARGV[10] admissions a second
--   ARGV[11] pass validity (ms)
--   ARGV[12] seed of the opening's draw (hex, from the OS's CSPRNG)
--   ARGV[13] the abuse limits: "<customer limit>|<address limit>|<address>" (ratelimit.lua;
--            joins count against the same budgets as holds and waitlist joins)
-- Output:
--   {1, ticket...}          the ticket (includes/queue.lua ticket_view), made now or by an
--                           earlier run with the same id (idempotent); after the queue
--                           ended sold out, a ticket made already ended `sold_out`
--   {-1}                    show not loaded
--   {-20, retry_after_s, scope}  over an abuse limit ("address" or "customer")
--   {-11, reason}           the show sells nothing: "closed" or "started"
--   {-23, sale_opens_at}    joining is not open (0: the show has no opening, no queue)
--   {-24}                   this customer already has a live ticket for this show
--@include context
--@include holds
--@include waitlist
--@include settle
--@include queue
--@include ratelimit
if not LOADED then return -1 end
begin()
settle_due()
local ticket_id, customer, token = ARGV[4], ARGV[5], ARGV[6]
local limited = over_rate_limit(ARGV[13], customer)
if limited then return finish(limited) end
redis.call('HSET', K_META, 'qshoppers', ARGV[8], 'qgroup', ARGV[9], 'qrate', ARGV[10], 'qpass_ms', ARGV[11])
queue_settle(ARGV[12])
if redis.call('EXISTS', ticket_key(ticket_id)) == 1 then
  local view = ticket_view(ticket_id)
  table.insert(view, 1, 1)
  return finish(view)
end
local stopped = not_selling()
if stopped then return finish({-11, stopped}) end
local opens, order, ended, drawn = queue_meta()
if opens == 0 or NOW < opens - tonumber(ARGV[7]) then return finish({-23, opens}) end
if ended == '' and redis.call('HEXISTS', q_key('queuers'), customer) == 1 then return finish({-24}) end
local arrival = redis.call('HINCRBY', K_META, 'qseq', '1')
redis.call('HSET', ticket_key(ticket_id), 'customer', customer, 'status', 'waiting', 'token', token,
  'arrival', arrival, 'joined_at', NOW)
redis.call('SADD', K_RECORDS, 'ticket:' .. ticket_id)
if ended ~= '' then
  -- Nothing left to queue for: the ticket is made ended, and says why.
  redis.call('HSET', ticket_key(ticket_id), 'status', ended, 'ended_at', NOW)
  redis.call('EXPIRE', ticket_key(ticket_id), RETENTION_S)
else
  local place = arrival
  if order == 'shuffle_before_open' and drawn then place = ORDER_AFTER_DRAW + arrival end
  redis.call('ZADD', q_key('queue'), string.format('%d', place), ticket_id)
  redis.call('HSET', q_key('queuers'), customer, ticket_id)
  redis.call('HSET', q_key('passtokens'), token, ticket_id)
  QUEUE_CHANGED = true
  admit()
end
local view = ticket_view(ticket_id)
table.insert(view, 1, 1)
return finish(view)
