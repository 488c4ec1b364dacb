DROP TABLE destination_pauses;
DROP TABLE deliveries;
