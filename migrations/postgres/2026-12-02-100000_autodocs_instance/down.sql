DROP TABLE autodocs_instance;
