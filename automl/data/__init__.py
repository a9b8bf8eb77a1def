"""Your data, read as ultralytics' detection trainer reads it: data.yaml and image lists
(`dataset`, `yolo_reader`), the check (`checks`), statistics (`eda`), COCO import (`coco`),
stratified mini splits and folds (`dataset`), and the generated demo data (`demo`)."""
