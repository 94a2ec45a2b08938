pub fn format(){}
