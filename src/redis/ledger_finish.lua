-- RedisLedger: settle or release one reservation. A reservation already expired (or released) is
-- not held any more; a settled cost is charged all the same.
-- KEYS as ledger_reserve.lua
-- ARGV: id, actual (-1: release without charge), day_s, week_s, month_s
local held = redis.call('HGET', KEYS[3], ARGV[1])
if held then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  local left = redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(held))
  if left < 0 then
    redis.call('HSET', KEYS[1], 'reserved', 0)
  end
end

local actual = tonumber(ARGV[2])
if actual < 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'total', actual)
local periods = {{'day', ARGV[3]}, {'week', ARGV[4]}, {'month', ARGV[5]}}
for _, p in ipairs(periods) do
  local current = redis.call('HGET', KEYS[1], p[1] .. '_s')
  if current == false or tonumber(p[2]) > tonumber(current) then
    redis.call('HSET', KEYS[1], p[1] .. '_s', p[2], p[1], actual)
  elseif current == p[2] then
    redis.call('HINCRBY', KEYS[1], p[1], actual)
  end
end
return 1
