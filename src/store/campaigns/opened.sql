-- Devices that reported opening the campaign's notification, per platform.
SELECT d.platform, count(*) AS n
  FROM pushrelay.device_receipts r
  JOIN pushrelay.deliveries d ON d.id = r.delivery_id
 WHERE r.campaign_id = $1 AND r.event = 'opened'
 GROUP BY d.platform
