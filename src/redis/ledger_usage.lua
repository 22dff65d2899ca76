-- RedisLedger: a key's settled spend per period and its outstanding reservations (expired ones
-- purged first).
-- KEYS as ledger_reserve.lua
-- ARGV: now, day_s, week_s, month_s
-- Returns {total, day, week, month, reserved}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(expired) do
  local held = tonumber(redis.call('HGET', KEYS[3], id) or '0')
  redis.call('HINCRBY', KEYS[1], 'reserved', -held)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[2], id)
end
local function spent(name, start)
  if redis.call('HGET', KEYS[1], name .. '_s') == start then
    return tonumber(redis.call('HGET', KEYS[1], name) or '0')
  end
  return 0
end
return {
  tonumber(redis.call('HGET', KEYS[1], 'total') or '0'),
  spent('day', ARGV[2]),
  spent('week', ARGV[3]),
  spent('month', ARGV[4]),
  math.max(tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0'), 0),
}
