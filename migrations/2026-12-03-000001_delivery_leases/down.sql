DROP TABLE delivery_leases;
