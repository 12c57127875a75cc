SELECT state, count(*) FROM pushrelay.deliveries WHERE app = $1 GROUP BY state ORDER BY state
