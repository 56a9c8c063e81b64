"""`qa eval`: answer quality on the public SQuAD and CLAPNQ files (`evaluate`), scored the official
way (`scoring`)."""
