-- The input view keeps its rows under another name, so clustered_rows.sql can
-- take the name input_rows with module_cluster added.
alter view input_rows rename to unclustered_rows
