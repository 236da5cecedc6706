DROP TABLE import_rejections;
DROP TABLE import_rows;
DROP TABLE import_jobs;
